//! The `cafe` application's own defaults, where the library has none or the
//! seed chose differently. Every other default is the library's (the
//! `Default` of each config), and `--help` shows it from there ([`library`]).

use std::fmt::Display;

use cafe_kafka::RoleConfig;
use cafe_kafka::producer::Acks;

/// `bootstrap.servers`: the broker `make kafka-up` starts (the library has no default).
pub const BOOTSTRAP: &str = "127.0.0.1:9092";
/// The seed's topic, for `produce`, `send` and `consume`.
pub const TOPIC: &str = "demo";
/// The seed's consumer group (the library has no default group id).
pub const GROUP_ID: &str = "cafe-group-clean";
/// The seed's producers used acks=1; the library defaults to Java's `all`.
pub const ACKS: Acks = Acks::Leader;
// `client.id` is this machine's host name, as in the seed: see `super::host_name`.

/// A flag's help text ending in the library's default for `key` of role `C`,
/// as clap writes a default (`... [default: 16384]`).
pub fn library<C: RoleConfig>(text: &str, key: &str) -> String {
    // A key missing from the table shows as empty; a unit test checks none is.
    app(text, C::default().get(key).unwrap_or_default())
}

/// A flag's help text ending in one of the application's defaults above.
pub fn app(text: &str, default: impl Display) -> String {
    format!("{text} [default: {default}]")
}
