//! Settings by their Kafka names: `set("acks", "all")` on a role's config, and
//! Java `client.properties` files ([`Properties`]) applied onto one.
//!
//! Each role keeps its key -> field table as data beside its struct (and its
//! `Default`, the only place a default is written): [`ClientConfig`] in
//! `config/client.rs`, [`ProducerConfig`](crate::ProducerConfig) in
//! `producer/config.rs`, [`ConsumerConfig`](crate::ConsumerConfig) in
//! `consumer/config.rs`; each `SETTINGS` table is a list of `setting!` rows. This module holds what the tables share: how values
//! parse (`value`), the errors, and which keys Kafka has that no table
//! implements yet (`known`).

mod client;
mod known;
mod properties;
mod security;
pub(crate) mod value;

use std::fmt;
use std::path::PathBuf;

pub use client::ClientConfig;
pub use properties::{Properties, Property};
pub(crate) use security::{ENDPOINT_IDENTIFICATION, JAAS, PATH, SECRET};
pub use security::{
    JaasConfig, SaslConfig, SaslMechanism, Secret, SecurityConfig, SecurityProtocol, SslConfig, is_secret_key,
};

/// Which config a setting belongs to. A `client.properties` file is usually
/// shared: applied onto one role, the keys of the others are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// [`ClientConfig`]: bootstrap servers and connection settings, shared by
    /// producers, consumers and admin clients.
    Client,
    /// [`ProducerConfig`](crate::ProducerConfig).
    Producer,
    /// [`ConsumerConfig`](crate::ConsumerConfig).
    Consumer,
}

impl Role {
    /// Every role, in the order errors list them.
    pub const ALL: [Role; 3] = [Role::Client, Role::Producer, Role::Consumer];

    /// The keys this role's table holds, in table order.
    pub fn keys(self) -> Vec<&'static str> {
        match self {
            Role::Client => ClientConfig::keys(),
            Role::Producer => crate::ProducerConfig::keys(),
            Role::Consumer => crate::ConsumerConfig::keys(),
        }
    }

    /// True when this role's table holds `key`.
    pub fn knows(self, key: &str) -> bool {
        self.keys().contains(&key)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "ClientConfig",
            Role::Producer => "ProducerConfig",
            Role::Consumer => "ConsumerConfig",
        })
    }
}

/// A role's config that takes settings by their Kafka names: implemented by
/// [`ClientConfig`], [`ProducerConfig`](crate::ProducerConfig) and
/// [`ConsumerConfig`](crate::ConsumerConfig) (each also has these as inherent
/// methods, so no import is needed), and what [`Properties::apply`] applies onto.
pub trait RoleConfig: Default + sealed::Sealed {
    /// Which role this is.
    const ROLE: Role;

    /// Sets `key` from its string `value`, parsed as the Java client parses it
    /// (surrounding whitespace trimmed). Fails with [`Error::Invalid`] for a
    /// value that does not parse, [`Error::OtherRole`] for a key of another
    /// role, [`Error::Unsupported`] for a Kafka setting not implemented here,
    /// and [`Error::Unknown`] for anything else.
    fn set(&mut self, key: &str, value: &str) -> Result<(), Error>;

    /// The current value of `key` as a properties file would write it (`None`
    /// when this role has no such key).
    fn get(&self, key: &str) -> Option<String>;

    /// Every key this role takes, in the order of its table.
    fn keys() -> Vec<&'static str>;

    /// The default config with `props` applied onto it ([`Properties::apply`]).
    fn from_properties(props: &Properties) -> Result<Self, Error> {
        let mut config = Self::default();
        props.apply(&mut config)?;
        Ok(config)
    }
}

pub(crate) mod sealed {
    /// Only this crate's configs have tables.
    pub trait Sealed {}
}

/// Why a setting, a value or a properties file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No role knows the key, and it is not a Kafka client setting either.
    #[error("unknown setting `{key}`{}", suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Unknown {
        /// The key as given.
        key: String,
        /// The closest known key, when one is close.
        suggestion: Option<&'static str>,
    },
    /// A Kafka client setting this library does not implement yet (keystores,
    /// Kerberos, two-phase commit, serializer classes, ...): refused rather than ignored.
    #[error("`{key}` is a Kafka client setting that cafe-kafka does not support yet")]
    Unsupported {
        /// The key as given.
        key: String,
    },
    /// The key belongs to another role (`group.id` set on a producer, say).
    /// [`Properties::apply`] skips these instead of failing.
    #[error("`{key}` is a {owner} setting, not a {role} one")]
    OtherRole {
        /// The key as given.
        key: String,
        /// The role it was set on.
        role: Role,
        /// A role that has it.
        owner: Role,
    },
    /// The value does not parse, or is out of range.
    #[error("invalid value `{value}` for `{key}`: expected {expected}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A properties line that cannot be read (a malformed `\uXXXX` escape).
    #[error("{reason}")]
    Syntax {
        /// What is wrong with the line.
        reason: String,
    },
    /// A properties file could not be read.
    #[error("cannot read properties file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// One of the errors above, at the line (or entry) of a [`Properties`]
    /// where it happened.
    #[error("{origin}: {error}")]
    At {
        /// Where the setting came from.
        origin: Origin,
        /// What is wrong with it.
        error: Box<Error>,
    },
}

impl Error {
    /// The error without its [`Error::At`] location.
    pub fn inner(&self) -> &Error {
        match self {
            Error::At { error, .. } => error.inner(),
            e => e,
        }
    }

    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self.inner() {
            Error::Unknown { key, .. }
            | Error::Unsupported { key }
            | Error::OtherRole { key, .. }
            | Error::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Where an entry of a [`Properties`] came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Line `line` (1-based; a continued line counts from its first) of the
    /// properties text `source`: a file's path, or `properties` for
    /// [`Properties::parse`]. Displays as `source:line`.
    Line {
        /// The file (or `properties`).
        source: String,
        /// The line number.
        line: usize,
    },
    /// Inserted by the program, described as it chose (`-X acks=all` for a
    /// command-line option, say). Displays as that label.
    Given(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line { source, line } => write!(f, "{source}:{line}"),
            Origin::Given(label) => f.write_str(label),
        }
    }
}

/// One row of a role's table: the Kafka key, how to parse a value into the
/// field, and how to write the field back (for `get`, round trips and the
/// defaults an application shows).
pub(crate) struct Setting<C> {
    pub(crate) key: &'static str,
    /// Parses the (trimmed) value and stores it; the error says what is accepted.
    pub(crate) set: fn(&mut C, &str) -> Result<(), String>,
    pub(crate) get: fn(&C) -> String,
}

/// A row of a table: `setting!("linger.ms" => linger: value::MS_LONG)` maps the
/// key to the field (a path such as `group.group_id` reaches into a member)
/// through a [`value::Kind`].
macro_rules! setting {
    ($key:literal => $($field:ident).+ : $kind:expr) => {
        $crate::config::Setting {
            key: $key,
            set: |c, v| {
                c.$($field).+ = $crate::config::value::Kind::parse(&$kind, v)?;
                Ok(())
            },
            get: |c| $crate::config::value::Kind::show(&$kind, &c.$($field).+),
        }
    };
}
pub(crate) use setting;

/// `set`, `get` and `from_properties` of a role, inherent and through
/// [`RoleConfig`], from its table.
macro_rules! role_config {
    ($ty:ty, $role:expr, $table:expr) => {
        impl $crate::config::sealed::Sealed for $ty {}

        impl $crate::config::RoleConfig for $ty {
            const ROLE: $crate::config::Role = $role;
            fn set(&mut self, key: &str, value: &str) -> Result<(), $crate::config::Error> {
                $crate::config::set_in($table, $role, self, key, value)
            }
            fn get(&self, key: &str) -> Option<String> {
                $table.iter().find(|s| s.key == key).map(|s| (s.get)(self))
            }
            fn keys() -> Vec<&'static str> {
                $table.iter().map(|s| s.key).collect()
            }
        }

        impl $ty {
            /// Sets one setting by its Kafka name, e.g. `set("acks", "all")`; see
            /// [`RoleConfig::set`](crate::config::RoleConfig::set) for the errors.
            pub fn set(&mut self, key: &str, value: &str) -> Result<(), $crate::config::Error> {
                $crate::config::RoleConfig::set(self, key, value)
            }

            /// The current value of a setting by its Kafka name, as a properties
            /// file writes it (`None` for a key of no setting here).
            pub fn get(&self, key: &str) -> Option<String> {
                $crate::config::RoleConfig::get(self, key)
            }

            /// Every key this role takes, in the order of its table.
            pub fn keys() -> Vec<&'static str> {
                <Self as $crate::config::RoleConfig>::keys()
            }

            /// The defaults with `props` applied ([`Properties::apply`](crate::config::Properties::apply)).
            pub fn from_properties(props: &$crate::config::Properties) -> Result<Self, $crate::config::Error> {
                $crate::config::RoleConfig::from_properties(props)
            }
        }
    };
}
pub(crate) use role_config;

/// `set` for a role: the row of `key`, or why there is none.
pub(crate) fn set_in<C>(table: &[Setting<C>], role: Role, config: &mut C, key: &str, value: &str) -> Result<(), Error> {
    match table.iter().find(|s| s.key == key) {
        Some(s) => (s.set)(config, value.trim()).map_err(|expected| Error::Invalid {
            key: key.to_owned(),
            // A malformed JAAS line still holds the password.
            value: if is_secret_key(key) { "[hidden]".to_owned() } else { value.to_owned() },
            expected,
        }),
        None => Err(known::not_for(role, key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConsumerConfig, ProducerConfig};

    /// Every row's default value parses back to the same value, in every role.
    fn defaults_round_trip<C: RoleConfig>() {
        let default = C::default();
        for key in C::ROLE.keys() {
            let shown = default.get(key).expect("a key of the table");
            let mut c = C::default();
            c.set(key, &shown).unwrap_or_else(|e| panic!("{key}={shown}: {e}"));
            assert_eq!(c.get(key).as_deref(), Some(shown.as_str()), "{key}");
        }
    }

    #[test]
    fn every_default_round_trips() {
        defaults_round_trip::<ClientConfig>();
        defaults_round_trip::<ProducerConfig>();
        defaults_round_trip::<ConsumerConfig>();
    }

    #[test]
    fn no_key_is_both_implemented_and_listed_unsupported() {
        for role in Role::ALL {
            for key in role.keys() {
                assert!(!known::is_unsupported(key), "{key} is in {role}'s table and in the unsupported list");
            }
        }
    }

    #[test]
    fn a_key_of_another_role_says_whose_it_is() {
        let e = ProducerConfig::default().set("group.id", "g").unwrap_err();
        assert_eq!(e.to_string(), "`group.id` is a ConsumerConfig setting, not a ProducerConfig one");
        let e = ConsumerConfig::default().set("bootstrap.servers", "h:1").unwrap_err();
        assert!(matches!(e, Error::OtherRole { owner: Role::Client, role: Role::Consumer, .. }), "{e:?}");
        // request.timeout.ms is both the connection's and the producer's.
        ProducerConfig::default().set("request.timeout.ms", "1000").unwrap();
        ClientConfig::default().set("request.timeout.ms", "1000").unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_with_the_closest_known_one() {
        let e = ClientConfig::default().set("bootstrap.server", "h:1").unwrap_err();
        assert_eq!(e.to_string(), "unknown setting `bootstrap.server`; did you mean `bootstrap.servers`?");
        let e = ConsumerConfig::default().set("group_id", "g").unwrap_err();
        assert_eq!(e.to_string(), "unknown setting `group_id`; did you mean `group.id`?");
        let e = ProducerConfig::default().set("no.such.key", "1").unwrap_err();
        assert_eq!(e.to_string(), "unknown setting `no.such.key`");
        assert_eq!(e.key(), Some("no.such.key"));
    }

    #[test]
    fn kafka_settings_not_implemented_are_refused_as_not_supported_yet() {
        for key in [
            "ssl.truststore.location",
            "sasl.kerberos.service.name",
            "transaction.two.phase.commit.enable",
            "key.serializer",
            "retries",
        ] {
            let e = ProducerConfig::default().set(key, "x").unwrap_err();
            assert!(matches!(e, Error::Unsupported { .. }), "{key}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("`{key}` is a Kafka client setting that cafe-kafka does not support yet")
            );
        }
        let e = ClientConfig::default().set("security.protocol", "TLS").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value `TLS` for `security.protocol`: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        );
    }
}
