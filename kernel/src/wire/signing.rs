//! HMAC-SHA256 signatures of messages. An empty key disables signing, as the
//! protocol specifies.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    mac: Option<HmacSha256>,
}

impl Signer {
    pub fn new(key: &str) -> Self {
        let mac = (!key.is_empty()).then(|| {
            HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key length")
        });
        Signer { mac }
    }

    /// The hex signature of the four signed frames (header, parent, metadata, content).
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for part in parts {
                    mac.update(part);
                }
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Constant-time check of a received signature.
    pub fn verify(&self, signature: &[u8], parts: &[&[u8]]) -> bool {
        match &self.mac {
            None => true,
            Some(mac) => {
                let Ok(expected) = hex::decode(signature) else {
                    return false;
                };
                let mut mac = mac.clone();
                for part in parts {
                    mac.update(part);
                }
                mac.verify_slice(&expected).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let signer = Signer::new("secret");
        let parts: [&[u8]; 4] = [b"{}", b"{}", b"{}", b"{\"a\":1}"];
        let sig = signer.sign(&parts);
        assert_eq!(sig.len(), 64);
        assert!(signer.verify(sig.as_bytes(), &parts));
        let tampered: [&[u8]; 4] = [b"{}", b"{}", b"{}", b"{\"a\":2}"];
        assert!(!signer.verify(sig.as_bytes(), &tampered));
        assert!(!signer.verify(b"zz", &parts));
        assert!(!Signer::new("other").verify(sig.as_bytes(), &parts));
    }

    #[test]
    fn empty_key_means_no_signing() {
        let signer = Signer::new("");
        assert_eq!(signer.sign(&[b"x"]), "");
        assert!(signer.verify(b"", &[b"x"]));
    }
}
