//! The Schema Registry wire format of a record value: magic byte `0`, the schema
//! id as 4 bytes big-endian, then the serialized document (here: JSON). This is
//! what Confluent's serializers write and expect. Pure: no I/O.

/// The magic byte that opens every framed value (format version 0).
pub const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Frames `payload` as written under schema `id`.
///
/// ```
/// use cafe_kafka::registry::framing::{Value, decode, encode};
///
/// let framed = encode(7, br#"{"drink":"flat white"}"#);
/// assert_eq!(framed[..5], [0, 0, 0, 0, 7]);
/// assert_eq!(decode(&framed), Value::Framed { id: 7, payload: br#"{"drink":"flat white"}"# });
///
/// // JSON written without a registry is told apart by its first byte.
/// assert_eq!(decode(b"{}"), Value::Plain(b"{}"));
/// assert_eq!(decode(&[0, 0, 1]), Value::Truncated(&[0, 0, 1]));
/// ```
pub fn encode(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a record value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Framed: schema id and the document after the header.
    Framed {
        /// The schema id, to look up with
        /// [`SchemaRegistry::schema_by_id`](super::SchemaRegistry::schema_by_id).
        id: u32,
        /// The serialized document.
        payload: &'a [u8],
    },
    /// Anything else. JSON text never starts with a NUL byte, so a value that
    /// does not open with the magic byte is read as plain JSON (or rejected as
    /// neither by the JSON decoder).
    Plain(&'a [u8]),
    /// Opens with the magic byte but is too short to hold a schema id.
    Truncated(&'a [u8]),
}

/// Tells framed values from plain ones by the magic byte.
pub fn decode(value: &[u8]) -> Value<'_> {
    match value {
        [MAGIC, a, b, c, d, payload @ ..] => Value::Framed { id: u32::from_be_bytes([*a, *b, *c, *d]), payload },
        [MAGIC, ..] => Value::Truncated(value),
        _ => Value::Plain(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_is_magic_zero_then_big_endian_id() {
        assert_eq!(encode(0x0102_0304, b"{}"), [0, 1, 2, 3, 4, b'{', b'}']);
        assert_eq!(encode(7, b""), [0, 0, 0, 0, 7]);
    }

    #[test]
    fn plain_json_is_not_mistaken_for_framed() {
        assert_eq!(decode(b"{\"a\":1}"), Value::Plain(b"{\"a\":1}"));
        assert_eq!(decode(b""), Value::Plain(b""));
        assert_eq!(decode(b" {}"), Value::Plain(b" {}"));
    }

    #[test]
    fn magic_without_a_full_id_is_truncated() {
        assert_eq!(decode(&[0, 0, 1]), Value::Truncated(&[0, 0, 1]));
        assert_eq!(decode(&[0]), Value::Truncated(&[0]));
    }

    #[test]
    fn an_empty_payload_after_the_header_is_still_framed() {
        assert_eq!(decode(&[0, 0, 0, 0, 9]), Value::Framed { id: 9, payload: b"" });
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(id in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let framed = encode(id, &payload);
            prop_assert_eq!(decode(&framed), Value::Framed { id, payload: &payload });
        }
    }
}
