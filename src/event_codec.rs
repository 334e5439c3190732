//! Cafe events in the Schema Registry wire format. Producing: validate against
//! the repo's JSON Schema (`event::validate_json_value` mirrors it), then frame
//! with the registered id. Consuming: framed values are looked up by id, plain
//! JSON is read as before, and anything else is a per-record skip.

use crate::event::{CafeEvent, EventError, validate_json_value};
use cafe_kafka::registry::{Error, SchemaRegistry, framing};

/// The JSON Schema registered for cafe events (draft-07, as Confluent's
/// serializer emits).
pub const CAFE_EVENT_SCHEMA: &str = include_str!("../schemas/cafe-event.schema.json");

/// Validates `event` against the schema's rules and frames it under `id`. A
/// failing event is an error, never sent.
pub fn encode_event(id: u32, event: &CafeEvent) -> Result<Vec<u8>, EventError> {
    let value = serde_json::to_value(event).map_err(EventError::NotJson)?;
    validate_json_value(&value)?;
    Ok(framing::encode(id, &event.to_json()))
}

/// What a record value decoded to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A cafe event; `schema_id` is set when the value was framed.
    Event { event: CafeEvent, schema_id: Option<u32> },
    /// Not a cafe event, for this reason: warn, skip, consume past it.
    Skip(String),
}

/// Decodes record values, plain or framed, with one registry (if any) whose
/// answers are cached.
pub struct ValueDecoder {
    registry: Option<SchemaRegistry>,
}

impl ValueDecoder {
    pub fn new(registry: Option<SchemaRegistry>) -> Self {
        Self { registry }
    }

    /// `Err` only when the registry is needed and cannot answer (or is not
    /// configured): then the record was not read, and must not be skipped.
    /// `record` names it (`topic[partition]@offset`) in that error.
    pub async fn decode(&mut self, record: &str, value: &[u8]) -> Result<Decoded, Error> {
        match framing::decode(value) {
            framing::Value::Plain(json) => Ok(from_json(json, None)),
            framing::Value::Truncated(bytes) => Ok(Decoded::Skip(format!(
                "starts with the Schema Registry magic byte but has {} bytes, too few for a schema id",
                bytes.len()
            ))),
            framing::Value::Framed { id, payload } => {
                let Some(registry) = self.registry.as_mut() else {
                    return Err(Error::NoRegistry { record: record.to_owned(), id });
                };
                let schema = match registry.schema_by_id(id).await {
                    Ok(schema) => schema,
                    Err(e) if e.is_unknown_schema() => return Ok(Decoded::Skip(e.to_string())),
                    Err(e) => return Err(e),
                };
                if schema.schema_type != "JSON" {
                    return Ok(Decoded::Skip(format!(
                        "schema id {id} is a {} schema, not JSON Schema",
                        schema.schema_type
                    )));
                }
                Ok(from_json(payload, Some(id)))
            }
        }
    }
}

fn from_json(json: &[u8], schema_id: Option<u32>) -> Decoded {
    match CafeEvent::from_json(json) {
        Ok(event) => Decoded::Event { event, schema_id },
        Err(e) => match schema_id {
            Some(id) => Decoded::Skip(format!("framed with schema id {id}, but {e}")),
            None => Decoded::Skip(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventGenerator;

    fn event() -> CafeEvent {
        EventGenerator::new(Some(3)).next_event(chrono::Utc::now())
    }

    #[test]
    fn encoded_events_are_framed_json_of_the_event() {
        let ev = event();
        let bytes = encode_event(7, &ev).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
        assert_eq!(CafeEvent::from_json(&bytes[5..]).unwrap(), ev);
    }

    #[test]
    fn an_event_that_breaks_the_schema_is_not_encoded() {
        let mut ev = event();
        ev.quantity = 0;
        assert!(matches!(encode_event(1, &ev), Err(EventError::QuantityTooSmall { .. })));
        let mut ev = event();
        ev.customer_name.clear();
        assert!(encode_event(1, &ev).is_err());
    }

    #[test]
    fn the_registered_schema_is_the_repo_schema_and_apicurio_recognises_it() {
        let schema: serde_json::Value = serde_json::from_str(CAFE_EVENT_SCHEMA).unwrap();
        // Apicurio detects JSON Schema by `$schema` or top-level `properties`.
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert!(schema["properties"].is_object());
    }

    #[tokio::test]
    async fn plain_json_and_garbage_need_no_registry() {
        let mut d = ValueDecoder::new(None);
        let ev = event();
        let got = d.decode("t[0]@0", &ev.to_json()).await.unwrap();
        assert_eq!(got, Decoded::Event { event: ev, schema_id: None });
        let got = d.decode("t[0]@1", b"hello").await.unwrap();
        assert!(matches!(&got, Decoded::Skip(r) if r.contains("not valid JSON")), "{got:?}");
        let got = d.decode("t[0]@2", &[0, 0, 1]).await.unwrap();
        assert!(matches!(&got, Decoded::Skip(r) if r.contains("magic byte")), "{got:?}");
    }

    #[tokio::test]
    async fn framed_without_a_registry_is_an_error_not_a_skip() {
        let mut d = ValueDecoder::new(None);
        let e = d.decode("t[0]@3", &encode_event(5, &event()).unwrap()).await.unwrap_err();
        assert!(matches!(e, Error::NoRegistry { id: 5, .. }), "{e:?}");
        // Names the record; the flag to pass is the CLI's to add (see `error.rs`).
        assert!(e.to_string().contains("none is configured") && e.to_string().contains("t[0]@3"), "{e}");
    }
}
