//! The local value store beside the state database:
//! `<notebook dir>/.slurmbook/values/<asset>-<version>.<ext>`.
//!
//! Writes are atomic: the value goes to a temporary file in the same
//! directory, is flushed to disk, then renamed over the final name, so a
//! reader sees either the old complete value or the new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::model::is_identifier;
use crate::private_fs::create_private_file;
use crate::state::STATE_DIR;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("value store: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("value store: `{asset}` / `{version}` is not a valid asset name and version")]
    BadKey { asset: String, version: String },
    #[error("value store: {path} is not valid JSON for this type: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Values of materialized assets, as files.
#[derive(Debug, Clone)]
pub struct ValueStore {
    dir: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ValueStore {
    /// The store of the notebook in `notebook_dir` (created on first write).
    pub fn new(notebook_dir: impl AsRef<Path>) -> ValueStore {
        ValueStore {
            dir: notebook_dir.as_ref().join(STATE_DIR).join("values"),
        }
    }

    /// The store in an explicit directory.
    pub fn at(dir: impl Into<PathBuf>) -> ValueStore {
        ValueStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the value of `asset` at `version` lives (`ext`: `json` or `bin`).
    pub fn path_for(&self, asset: &str, version: &str, ext: &str) -> Result<PathBuf, StoreError> {
        let version_ok = !version.is_empty()
            && version.len() <= 128
            && version.chars().all(|c| c.is_ascii_alphanumeric());
        let ext_ok = !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric());
        if !is_identifier(asset) || !version_ok || !ext_ok {
            return Err(StoreError::BadKey {
                asset: asset.to_string(),
                version: version.to_string(),
            });
        }
        Ok(self.dir.join(format!("{asset}-{version}.{ext}")))
    }

    /// Write bytes atomically; returns the final path.
    pub fn write_bytes(
        &self,
        asset: &str,
        version: &str,
        ext: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, StoreError> {
        let path = self.path_for(asset, version, ext)?;
        crate::private_fs::create_private_dir(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.dir.join(format!(
            ".{asset}-{version}.{ext}.tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = create_private_file(&tmp).map_err(io(&tmp))?;
            f.write_all(bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io(&path))?;
            // Make the rename itself durable.
            #[cfg(unix)]
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(path.clone())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Serialize `value` as JSON and write it atomically (`.json`).
    pub fn write_json<T: Serialize + ?Sized>(
        &self,
        asset: &str,
        version: &str,
        value: &T,
    ) -> Result<PathBuf, StoreError> {
        let path = self.path_for(asset, version, "json")?;
        let bytes =
            serde_json::to_vec(value).map_err(|source| StoreError::Json { path, source })?;
        self.write_bytes(asset, version, "json", &bytes)
    }

    /// Read the bytes of a value, `None` if it was never written.
    pub fn read_bytes(
        &self,
        asset: &str,
        version: &str,
        ext: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_for(asset, version, ext)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Read a JSON value, `None` if it was never written.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        asset: &str,
        version: &str,
    ) -> Result<Option<T>, StoreError> {
        let path = self.path_for(asset, version, "json")?;
        match self.read_bytes(asset, version, "json")? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| StoreError::Json { path, source }),
        }
    }

    pub fn exists(&self, asset: &str, version: &str, ext: &str) -> bool {
        self.path_for(asset, version, ext).is_ok_and(|p| p.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = ValueStore::new(dir.path());
        assert_eq!(store.read_json::<Vec<f64>>("temps", "abc1").unwrap(), None);
        let p = store.write_json("temps", "abc1", &vec![1.5, 2.5]).unwrap();
        assert_eq!(p, dir.path().join(".slurmbook/values/temps-abc1.json"));
        assert_eq!(
            store.read_json::<Vec<f64>>("temps", "abc1").unwrap(),
            Some(vec![1.5, 2.5])
        );
        assert!(store.exists("temps", "abc1", "json"));
        store.write_bytes("raw", "ff", "bin", b"\x00\x01").unwrap();
        assert_eq!(
            store.read_bytes("raw", "ff", "bin").unwrap(),
            Some(vec![0, 1])
        );
        assert!(matches!(
            store.read_json::<String>("temps", "abc1"),
            Err(StoreError::Json { .. })
        ));
    }

    #[test]
    fn keys_cannot_escape_the_directory() {
        let store = ValueStore::at("/tmp/x");
        for (a, v) in [
            ("../etc", "1"),
            ("a", "../1"),
            ("a", ""),
            ("fn", "1"),
            ("a/b", "1"),
            ("a", "1.json"),
        ] {
            assert!(
                matches!(store.path_for(a, v, "json"), Err(StoreError::BadKey { .. })),
                "{a} {v}"
            );
        }
        assert!(store.path_for("a", "1", "../x").is_err());
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ValueStore::new(dir.path());
        let big = |c: u8| vec![c; 4 << 20];
        store.write_bytes("v", "1", "bin", &big(b'a')).unwrap();
        let reader_store = store.clone();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done2 = done.clone();
        let reader = std::thread::spawn(move || {
            let mut reads = 0;
            while !done2.load(Ordering::Relaxed) || reads == 0 {
                let b = reader_store.read_bytes("v", "1", "bin").unwrap().unwrap();
                assert_eq!(b.len(), 4 << 20, "a reader never sees a partial file");
                assert!(b.iter().all(|&x| x == b[0]), "a reader never sees a mix");
                reads += 1;
            }
            reads
        });
        for i in 0..20u8 {
            store
                .write_bytes("v", "1", "bin", &big(b'a' + i % 2))
                .unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        let names: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["v-1.bin"]);
    }
}
