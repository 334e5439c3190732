//! The `CafeEvent` record and its JSON encoding, decoding and validation; its
//! seedable generator of realistic orders is in `generator`. Pure: no I/O, time
//! is an argument.
//!
//! The rules here are the ones `schemas/cafe-event.schema.json` states; a unit
//! test reads that file and checks the two agree, so change them together.

mod generator;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use generator::EventGenerator;

/// One order at the cafe: the value of every record on the topic.
///
/// Field order is the JSON field order on the wire; keep it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CafeEvent {
    /// UUID v4, unique per order.
    pub event_id: String,
    pub customer_name: String,
    pub drink_name: String,
    /// Cups ordered, at least 1.
    pub quantity: u32,
    /// Price times quantity, in currency units with at most two decimals.
    pub amount: f64,
    pub is_member: bool,
    /// RFC 3339 in UTC with milliseconds: `2026-11-25T12:34:56.789Z`.
    pub ts_utc: String,
}

/// A JSON type, named as JSON Schema names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    String,
    Integer,
    Number,
    Boolean,
}

impl JsonType {
    /// The name used in a JSON Schema `"type"` keyword.
    pub fn schema_name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
        }
    }

    fn admits(self, v: &Value) -> bool {
        match self {
            JsonType::String => v.is_string(),
            // `2.0` is rejected although draft-07 calls it an integer: the
            // decoder reads `quantity` as `u32` and would refuse it anyway.
            JsonType::Integer => v.is_i64() || v.is_u64(),
            // JSON Schema counts integers as numbers, and so does serde.
            JsonType::Number => v.is_number(),
            JsonType::Boolean => v.is_boolean(),
        }
    }
}

/// Every field of a `CafeEvent` in wire order, with its JSON type. A
/// document with any other field, or without one of these, is invalid.
pub const FIELDS: [(&str, JsonType); 7] = [
    ("event_id", JsonType::String),
    ("customer_name", JsonType::String),
    ("drink_name", JsonType::String),
    ("quantity", JsonType::Integer),
    ("amount", JsonType::Number),
    ("is_member", JsonType::Boolean),
    ("ts_utc", JsonType::String),
];

/// Why bytes or a value are not a valid `CafeEvent`. Each message is one line
/// naming the field at fault; text taken from the input is quoted with `{:?}`
/// so a stray newline cannot break the line. Parser errors are part of the
/// message rather than a `source`, so `{:#}` chains do not print them twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("event is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("event is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("event must be a JSON object, found {found}")]
    NotObject { found: &'static str },
    #[error("event is missing field `{field}`")]
    MissingField { field: &'static str },
    #[error("event has unexpected field {field:?} (a CafeEvent has exactly: {})", field_list())]
    UnknownField { field: String },
    #[error("field `{field}` must be of type {expected}, found {found}")]
    WrongType { field: &'static str, expected: &'static str, found: &'static str },
    #[error("field `{field}` must not be empty")]
    EmptyField { field: &'static str },
    #[error("quantity must be at least 1, found {found}")]
    QuantityTooSmall { found: i64 },
    #[error("quantity must be at most {}, found {found}", u32::MAX)]
    QuantityTooLarge { found: u64 },
    #[error("amount must be a finite number >= 0, found {found}")]
    InvalidAmount { found: f64 },
    #[error("ts_utc {value:?} is not an RFC 3339 timestamp: {reason}")]
    InvalidTimestamp { value: String, reason: String },
    /// The document passed every check yet serde refused it: a bug here.
    #[error("event could not be decoded: {0}")]
    Decode(serde_json::Error),
}

fn field_list() -> String {
    FIELDS.map(|(name, _)| name).join(", ")
}

impl CafeEvent {
    /// Encodes as compact JSON with the fields in declaration order.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers, floats and bools cannot fail to serialise (a
        // non-finite float becomes `null`, which `validate` rejects first).
        serde_json::to_vec(self).expect("a CafeEvent always serialises")
    }

    /// Decodes and validates one record value.
    pub fn from_json(bytes: &[u8]) -> Result<CafeEvent, EventError> {
        // Checked apart from JSON syntax so the error says which is wrong.
        let text = std::str::from_utf8(bytes).map_err(EventError::NotUtf8)?;
        let value: Value = serde_json::from_str(text).map_err(EventError::NotJson)?;
        let event = decode_value(&value)?;
        event.validate()?;
        Ok(event)
    }

    /// Checks the invariants the types cannot express.
    pub fn validate(&self) -> Result<(), EventError> {
        check_non_empty("event_id", &self.event_id)?;
        check_non_empty("customer_name", &self.customer_name)?;
        check_non_empty("drink_name", &self.drink_name)?;
        if self.quantity < 1 {
            return Err(EventError::QuantityTooSmall { found: i64::from(self.quantity) });
        }
        if !self.amount.is_finite() || self.amount < 0.0 {
            return Err(EventError::InvalidAmount { found: self.amount });
        }
        check_timestamp(&self.ts_utc)
    }
}

/// Checks a JSON document against the rules of `cafe-event.schema.json`:
/// exactly the seven fields, each of its type, and the value constraints
/// (non-empty strings, quantity >= 1, amount >= 0, `ts_utc` a date-time).
pub fn validate_json_value(v: &Value) -> Result<(), EventError> {
    decode_value(v)?.validate()
}

/// Structure and types first, so errors name the field rather than quoting
/// serde's message; then serde builds the struct from the same value.
fn decode_value(v: &Value) -> Result<CafeEvent, EventError> {
    let object = v.as_object().ok_or(EventError::NotObject { found: json_type_of(v) })?;
    check_field_set(object)?;
    for (field, expected) in FIELDS {
        check_type(object, field, expected)?;
    }
    if let Some(quantity) = object.get("quantity") {
        check_quantity_range(quantity)?;
    }
    CafeEvent::deserialize(v).map_err(EventError::Decode)
}

fn check_field_set(object: &Map<String, Value>) -> Result<(), EventError> {
    for (field, _) in FIELDS {
        if !object.contains_key(field) {
            return Err(EventError::MissingField { field });
        }
    }
    match object.keys().find(|key| !FIELDS.iter().any(|(field, _)| field == key)) {
        Some(extra) => Err(EventError::UnknownField { field: extra.clone() }),
        None => Ok(()),
    }
}

fn check_type(object: &Map<String, Value>, field: &'static str, expected: JsonType) -> Result<(), EventError> {
    let value = object.get(field).ok_or(EventError::MissingField { field })?;
    if expected.admits(value) {
        Ok(())
    } else {
        Err(EventError::WrongType { field, expected: expected.schema_name(), found: json_type_of(value) })
    }
}

/// The struct holds `u32`; say so in our words before serde says it in its.
fn check_quantity_range(quantity: &Value) -> Result<(), EventError> {
    if let Some(found) = quantity.as_i64().filter(|q| *q < 1) {
        return Err(EventError::QuantityTooSmall { found });
    }
    match quantity.as_u64() {
        Some(found) if found > u64::from(u32::MAX) => Err(EventError::QuantityTooLarge { found }),
        _ => Ok(()),
    }
}

fn check_non_empty(field: &'static str, value: &str) -> Result<(), EventError> {
    if value.is_empty() { Err(EventError::EmptyField { field }) } else { Ok(()) }
}

fn check_timestamp(value: &str) -> Result<(), EventError> {
    DateTime::parse_from_rfc3339(value)
        .map(|_| ())
        .map_err(|e| EventError::InvalidTimestamp { value: value.to_owned(), reason: e.to_string() })
}

fn json_type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Formats a time as `ts_utc` wants it: RFC 3339, milliseconds, `Z`.
pub fn format_ts_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::generator::amount_from_cents;
    use proptest::prelude::*;
    use serde_json::json;

    const SCHEMA: &str = include_str!("../../schemas/cafe-event.schema.json");

    pub(super) fn order_time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T12:34:56.789Z").expect("literal is RFC 3339").with_timezone(&Utc)
    }

    fn sample() -> CafeEvent {
        EventGenerator::new(Some(7)).next_event(order_time())
    }

    fn sample_value() -> Value {
        serde_json::to_value(sample()).expect("event serialises")
    }

    fn schema() -> Value {
        serde_json::from_str(SCHEMA).expect("schema file is JSON")
    }

    fn with_field(field: &str, v: Value) -> Value {
        let mut doc = sample_value();
        doc[field] = v;
        doc
    }

    #[test]
    fn ts_utc_has_milliseconds_and_z() {
        assert_eq!(format_ts_utc(order_time()), "2026-11-25T12:34:56.789Z");
        assert_eq!(sample().ts_utc, "2026-11-25T12:34:56.789Z");
    }

    #[test]
    fn json_keeps_field_order_and_round_trips() {
        let ev = sample();
        let bytes = ev.to_json();
        let text = String::from_utf8(bytes.clone()).expect("JSON is UTF-8");
        let positions: Vec<usize> =
            FIELDS.iter().map(|(f, _)| text.find(&format!("\"{f}\":")).expect("field present")).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(CafeEvent::from_json(&bytes).expect("decodes"), ev);
    }

    fn decode_err(doc: &Value) -> EventError {
        let bytes = serde_json::to_vec(doc).expect("test doc serialises");
        match CafeEvent::from_json(&bytes) {
            Err(e) => e,
            Ok(ev) => panic!("{doc} decoded to {ev:?}"),
        }
    }

    #[test]
    fn from_json_says_what_is_wrong() {
        assert!(matches!(CafeEvent::from_json(b"{\"event_id\":\"\xff\"}"), Err(EventError::NotUtf8(_))));
        assert!(matches!(CafeEvent::from_json(b"{\"event_id\":"), Err(EventError::NotJson(_))));
        assert!(matches!(decode_err(&json!([1])), EventError::NotObject { found: "array" }));

        let mut missing = sample_value();
        missing.as_object_mut().map(|o| o.remove("drink_name"));
        assert!(matches!(decode_err(&missing), EventError::MissingField { field: "drink_name" }));

        let extra = with_field("tip", json!(1));
        assert!(matches!(decode_err(&extra), EventError::UnknownField { field } if field == "tip"));

        let wrong = decode_err(&with_field("quantity", json!("2")));
        assert!(matches!(wrong, EventError::WrongType { field: "quantity", expected: "integer", found: "string" }));
        assert!(matches!(decode_err(&with_field("quantity", json!(2.0))), EventError::WrongType { .. }));
        assert!(matches!(decode_err(&with_field("quantity", json!(0))), EventError::QuantityTooSmall { found: 0 }));
        assert!(matches!(decode_err(&with_field("quantity", json!(-3))), EventError::QuantityTooSmall { found: -3 }));
        let huge = with_field("quantity", json!(u64::from(u32::MAX) + 1));
        assert!(matches!(decode_err(&huge), EventError::QuantityTooLarge { .. }));
        assert!(matches!(decode_err(&with_field("amount", json!(-0.5))), EventError::InvalidAmount { .. }));
        assert!(matches!(
            decode_err(&with_field("customer_name", json!(""))),
            EventError::EmptyField { field: "customer_name" }
        ));
        assert!(matches!(decode_err(&with_field("ts_utc", json!("yesterday"))), EventError::InvalidTimestamp { .. }));
    }

    #[test]
    fn error_messages_are_one_line_and_name_the_field() {
        let err = decode_err(&with_field("ts_utc", json!("25/11/2026\nnoon")));
        assert!(err.to_string().starts_with("ts_utc"));
        let errors = [
            err,
            decode_err(&with_field("is_member", json!("yes"))),
            decode_err(&with_field("extra\nline", json!(null))),
            decode_err(&json!("not an object")),
            CafeEvent::from_json(b"{\n\"a\":\n").expect_err("truncated JSON"),
        ];
        for e in errors {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let extra = decode_err(&with_field("extra", json!(null))).to_string();
        assert!(extra.contains("\"extra\"") && extra.contains("event_id, customer_name"), "{extra}");
    }

    #[test]
    fn validate_rejects_broken_structs() {
        let broken = [
            CafeEvent { amount: f64::NAN, ..sample() },
            CafeEvent { amount: f64::INFINITY, ..sample() },
            CafeEvent { quantity: 0, ..sample() },
            CafeEvent { event_id: String::new(), ..sample() },
            CafeEvent { ts_utc: "2026-11-25 12:34".to_owned(), ..sample() },
        ];
        for ev in broken {
            assert!(ev.validate().is_err(), "{ev:?}");
        }
    }

    #[test]
    fn schema_is_draft07_and_requires_exactly_the_seven_fields() {
        let schema = schema();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["title"], "CafeEvent");
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        let names: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
        assert_eq!(schema["required"], json!(names));
        let properties = schema["properties"].as_object().expect("properties is an object");
        let mut listed: Vec<&str> = properties.keys().map(String::as_str).collect();
        let mut expected = names.clone();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        assert_eq!(schema["properties"]["ts_utc"]["format"], "date-time");
    }

    #[test]
    fn schema_types_are_the_types_validate_json_value_enforces() {
        let schema = schema();
        for (field, json_type) in FIELDS {
            assert_eq!(schema["properties"][field]["type"], json_type.schema_name(), "{field}");
        }
    }

    /// One value of each JSON type, as JSON Schema names them.
    fn samples_of_every_type() -> [(&'static str, Value); 7] {
        [
            ("null", json!(null)),
            ("boolean", json!(true)),
            ("integer", json!(2)),
            ("number", json!(2.5)),
            ("string", json!("x")),
            ("array", json!([])),
            ("object", json!({})),
        ]
    }

    #[test]
    fn validate_json_value_accepts_exactly_the_schema_types() {
        let schema = schema();
        let properties = schema["properties"].as_object().expect("properties is an object");
        for (field, property) in properties {
            let allowed = property["type"].as_str().expect("type is a string");
            for (kind, value) in samples_of_every_type() {
                // JSON Schema: every integer is also a number.
                let admitted = kind == allowed || (allowed == "number" && kind == "integer");
                let result = validate_json_value(&with_field(field, value));
                if admitted {
                    // "x" is not a date-time, so a string is only type-checked here.
                    let type_ok = !matches!(result, Err(EventError::WrongType { .. }));
                    assert!(type_ok, "{field} should admit a {kind}: {result:?}");
                } else {
                    assert!(
                        matches!(result, Err(EventError::WrongType { .. })),
                        "{field} should reject a {kind}: {result:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn validate_json_value_enforces_the_schema_bounds() {
        let schema = schema();
        for (field, property) in schema["properties"].as_object().expect("properties") {
            if let Some(min) = property["minimum"].as_i64() {
                assert!(validate_json_value(&with_field(field, json!(min))).is_ok(), "{field}");
                let below = if property["type"] == "integer" { json!(min - 1) } else { json!(min as f64 - 0.01) };
                assert!(validate_json_value(&with_field(field, below)).is_err(), "{field}");
            }
            if let Some(max) = property["maximum"].as_u64() {
                assert!(validate_json_value(&with_field(field, json!(max))).is_ok(), "{field}");
                assert!(validate_json_value(&with_field(field, json!(max + 1))).is_err(), "{field}");
            }
            if property["minLength"] == 1 {
                assert!(validate_json_value(&with_field(field, json!(""))).is_err(), "{field}");
            }
            if property["format"] == "date-time" {
                assert!(validate_json_value(&with_field(field, json!("2026-11-25T12:34:56+01:00"))).is_ok());
                assert!(validate_json_value(&with_field(field, json!("not a time"))).is_err(), "{field}");
            }
        }
    }

    #[test]
    fn validate_json_value_rejects_missing_and_additional_properties() {
        let schema = schema();
        for field in schema["required"].as_array().expect("required is an array") {
            let name = field.as_str().expect("required names are strings");
            let mut doc = sample_value();
            doc.as_object_mut().map(|o| o.remove(name));
            assert!(matches!(validate_json_value(&doc), Err(EventError::MissingField { .. })), "{name}");
        }
        let extra = validate_json_value(&with_field("note", json!("no sugar")));
        assert!(matches!(extra, Err(EventError::UnknownField { .. })));
    }

    fn arb_event() -> impl Strategy<Value = CafeEvent> {
        (".{1,40}", ".{1,40}", ".{1,40}", 1..=u32::MAX, 0u32..10_000_000, any::<bool>(), 0i64..4_102_444_800_000)
            .prop_map(|(id, customer, drink, quantity, cents, is_member, ms)| CafeEvent {
                event_id: id,
                customer_name: customer,
                drink_name: drink,
                quantity,
                amount: amount_from_cents(cents),
                is_member,
                ts_utc: format_ts_utc(DateTime::from_timestamp_millis(ms).unwrap_or_default()),
            })
    }

    proptest! {
        #[test]
        fn json_round_trips(ev in arb_event()) {
            prop_assert_eq!(CafeEvent::from_json(&ev.to_json()).ok(), Some(ev));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CafeEvent::from_json(&bytes);
        }
    }
}
