//! Property tests of the Jupyter wire decoder: arbitrary frames are an
//! error value, never a panic; a signed message survives a round trip; any
//! change to a signed part is refused. (The same on a live kernel's shell
//! socket: tests/conformance/test_wire_fuzz.py.)

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use slurmbook_kernel::wire::message::DELIMITER;
use slurmbook_kernel::wire::{Message, Signer, WireError};

fn frame() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::from_static(DELIMITER)),
        Just(Bytes::from_static(b"{}")),
        Just(Bytes::from_static(
            b"{\"msg_id\":\"1\",\"msg_type\":\"kernel_info_request\"}"
        )),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        "\\PC{0,40}".prop_map(Bytes::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_frames_are_an_error_or_a_message_never_a_panic(
        frames in prop::collection::vec(frame(), 0..10),
        keyed in any::<bool>(),
    ) {
        let signer = Signer::new(if keyed { "secret" } else { "" });
        if let Ok(message) = Message::from_frames(frames, &signer) {
            // Only an unsigned session accepts unsigned frames.
            prop_assert!(!keyed, "accepted without a valid signature: {message:?}");
        }
    }

    #[test]
    fn a_signed_message_round_trips(
        content in json_value(),
        metadata in json_value(),
        identity in prop::collection::vec(any::<u8>(), 1..16),
        msg_type in "[a-z_]{1,20}",
    ) {
        let signer = Signer::new("0123456789abcdef");
        let mut message = Message::new(&msg_type, "session", None, content.clone());
        message.metadata = metadata.clone();
        message.identities = vec![Bytes::from(identity.clone())];
        let back = Message::from_frames(message.to_frames(&signer), &signer)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.header, message.header);
        prop_assert_eq!(back.content, content);
        prop_assert_eq!(back.metadata, metadata);
        prop_assert_eq!(back.parent_header, json!({}));
        prop_assert_eq!(back.identities, vec![Bytes::from(identity)]);
    }

    #[test]
    fn a_change_to_any_signed_part_is_refused(
        content in json_value(),
        part in 0usize..5,
        at in any::<usize>(),
        flip in 1u8..=255,
    ) {
        let signer = Signer::new("0123456789abcdef");
        let message = Message::new("execute_request", "s", None, content);
        let mut frames = message.to_frames(&signer);
        // frames: <IDS|MSG>, signature, header, parent, metadata, content.
        let index = 1 + part;
        let mut bytes = frames[index].to_vec();
        prop_assume!(!bytes.is_empty());
        let at = at % bytes.len();
        bytes[at] ^= flip;
        // The signature is hex, read in either case: `a` -> `A` is no change.
        prop_assume!(part != 0 || !bytes.eq_ignore_ascii_case(&frames[index]));
        frames[index] = Bytes::from(bytes);
        let refused = matches!(
            Message::from_frames(frames, &signer),
            Err(WireError::BadSignature)
        );
        prop_assert!(refused, "a changed part {} was not refused", part);
    }
}
