//! How the values of settings parse, as the Java client's `ConfigDef` parses
//! them: whole numbers (milliseconds, bytes, counts) with the range Java
//! accepts, booleans `true`/`false`, enums with Java's spellings, lists
//! separated by commas. A parse error says what the key accepts.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use crate::group::assign::Assignor;

/// A kind of value: parses a (trimmed) string into the field's type and writes
/// it back the way a properties file would.
pub(crate) trait Kind<T> {
    /// The value, or what is accepted.
    fn parse(&self, value: &str) -> Result<T, String>;
    fn show(&self, value: &T) -> String;
}

/// A duration in whole milliseconds, `0..=max`.
pub(crate) struct Millis {
    max: u64,
}

/// Java's `INT` milliseconds (`request.timeout.ms`, `session.timeout.ms`, ...).
pub(crate) const MS_INT: Millis = Millis { max: i32::MAX as u64 };
/// Java's `LONG` milliseconds (`linger.ms`, `max.block.ms`, `metadata.max.age.ms`, ...).
pub(crate) const MS_LONG: Millis = Millis { max: i64::MAX as u64 };

impl Kind<Duration> for Millis {
    fn parse(&self, value: &str) -> Result<Duration, String> {
        value
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= self.max)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("a whole number of milliseconds from 0 to {}", self.max))
    }

    fn show(&self, value: &Duration) -> String {
        value.as_millis().to_string()
    }
}

/// A whole number in `min..=max` (bytes, counts), stored in any integer type
/// that holds the range.
pub(crate) struct Int {
    min: i64,
    max: i64,
}

/// Java's `INT` with `atLeast(0)` (`batch.size`, `fetch.min.bytes`, ...).
pub(crate) const INT_AT_LEAST_0: Int = Int { min: 0, max: i32::MAX as i64 };
/// Java's `INT` with `atLeast(1)` (`max.poll.records`, `max.in.flight.requests.per.connection`).
pub(crate) const INT_AT_LEAST_1: Int = Int { min: 1, max: i32::MAX as i64 };
/// Java's `LONG` with `atLeast(0)` (`buffer.memory`).
pub(crate) const LONG_AT_LEAST_0: Int = Int { min: 0, max: i64::MAX };

impl<T: TryFrom<i64> + Display> Kind<T> for Int {
    fn parse(&self, value: &str) -> Result<T, String> {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| (self.min..=self.max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("a whole number from {} to {}", self.min, self.max))
    }

    fn show(&self, value: &T) -> String {
        value.to_string()
    }
}

/// `true` or `false`, in any case (Java's `BOOLEAN`).
pub(crate) const BOOL: Bool = Bool;
pub(crate) struct Bool;

impl Kind<bool> for Bool {
    fn parse(&self, value: &str) -> Result<bool, String> {
        match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("true or false".into()),
        }
    }

    fn show(&self, value: &bool) -> String {
        value.to_string()
    }
}

/// A boolean that may be left to its default (`enable.idempotence`: on unless
/// other settings conflict, as Java decides when it was not set).
impl Kind<Option<bool>> for Bool {
    fn parse(&self, value: &str) -> Result<Option<bool>, String> {
        Kind::<bool>::parse(self, value).map(Some)
    }

    /// Unset shows as `true`, Java's documented default (on unless a setting conflicts).
    fn show(&self, value: &Option<bool>) -> String {
        value.unwrap_or(true).to_string()
    }
}

/// Any text (Java's `STRING`).
pub(crate) const TEXT: Text = Text;
pub(crate) struct Text;

impl Kind<String> for Text {
    fn parse(&self, value: &str) -> Result<String, String> {
        Ok(value.to_owned())
    }

    fn show(&self, value: &String) -> String {
        value.clone()
    }
}

/// Text that may be absent (`group.instance.id`): empty means not set.
impl Kind<Option<String>> for Text {
    fn parse(&self, value: &str) -> Result<Option<String>, String> {
        Ok(Some(value).filter(|v| !v.is_empty()).map(str::to_owned))
    }

    fn show(&self, value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
}

/// One of an enum's spellings, in any case (its `FromStr`, after lowercasing);
/// the text lists them for the error.
pub(crate) struct Choice(pub(crate) &'static str);

impl<T: FromStr + Display> Kind<T> for Choice {
    fn parse(&self, value: &str) -> Result<T, String> {
        value.to_ascii_lowercase().parse().map_err(|_| self.0.to_owned())
    }

    fn show(&self, value: &T) -> String {
        value.to_string()
    }
}

/// `bootstrap.servers`: `host:port` entries separated by commas (empty
/// entries dropped; no entry at all is left for connecting to refuse).
pub(crate) const SERVERS: Servers = Servers;
pub(crate) struct Servers;

impl Kind<Vec<String>> for Servers {
    fn parse(&self, value: &str) -> Result<Vec<String>, String> {
        let servers: Vec<String> = list(value).map(str::to_owned).collect();
        let valid = |s: &String| s.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if servers.iter().all(valid) { Ok(servers) } else { Err("a comma-separated list of host:port".into()) }
    }

    fn show(&self, value: &Vec<String>) -> String {
        value.join(",")
    }
}

/// `partition.assignment.strategy`: assignors by protocol name or Java class
/// name, in preference order. The member rebalances cooperatively only when
/// every one listed is cooperative (`RebalanceProtocol::of`).
pub(crate) const ASSIGNORS: Assignors = Assignors;
pub(crate) struct Assignors;

impl Kind<Vec<Assignor>> for Assignors {
    fn parse(&self, value: &str) -> Result<Vec<Assignor>, String> {
        const EXPECTED: &str = "a comma-separated list of range, roundrobin and cooperative-sticky (or the \
                                Java class names org.apache.kafka.clients.consumer.RangeAssignor, \
                                RoundRobinAssignor and CooperativeStickyAssignor); sticky is not supported";
        let assignors: Vec<Assignor> = list(value)
            .map(|name| {
                let short = name.strip_prefix("org.apache.kafka.clients.consumer.").unwrap_or(name);
                match short {
                    "range" | "RangeAssignor" => Some(Assignor::Range),
                    "roundrobin" | "RoundRobinAssignor" => Some(Assignor::RoundRobin),
                    "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Assignor::CooperativeSticky),
                    _ => None,
                }
            })
            .collect::<Option<_>>()
            .ok_or(EXPECTED)?;
        if assignors.is_empty() {
            return Err(EXPECTED.into());
        }
        Ok(assignors)
    }

    fn show(&self, value: &Vec<Assignor>) -> String {
        value.iter().map(|a| a.name()).collect::<Vec<_>>().join(",")
    }
}

/// The entries of a comma-separated list, trimmed, empty ones dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_whole_and_within_javas_range() {
        assert_eq!(MS_INT.parse("250"), Ok(Duration::from_millis(250)));
        assert_eq!(MS_INT.parse("2147483647"), Ok(Duration::from_millis(i32::MAX as u64)));
        for bad in ["2147483648", "-1", "1.5", "10s", ""] {
            assert_eq!(MS_INT.parse(bad), Err("a whole number of milliseconds from 0 to 2147483647".into()), "{bad:?}");
        }
        assert!(MS_LONG.parse("2147483648").is_ok());
        assert_eq!(MS_LONG.show(&Duration::from_secs(2)), "2000");
    }

    #[test]
    fn integers_keep_to_their_range_and_type() {
        assert_eq!(Kind::<usize>::parse(&INT_AT_LEAST_0, "0"), Ok(0));
        assert_eq!(Kind::<usize>::parse(&INT_AT_LEAST_1, "0"), Err("a whole number from 1 to 2147483647".into()));
        assert_eq!(Kind::<i32>::parse(&INT_AT_LEAST_0, "-5"), Err("a whole number from 0 to 2147483647".into()));
        assert_eq!(Kind::<usize>::parse(&LONG_AT_LEAST_0, "33554432"), Ok(32 << 20));
    }

    #[test]
    fn booleans_are_true_or_false_in_any_case() {
        assert_eq!(BOOL.parse("TRUE"), Ok(true));
        assert_eq!(BOOL.parse("false"), Ok(false));
        assert_eq!(Kind::<bool>::parse(&BOOL, "yes"), Err("true or false".into()));
        assert_eq!(Kind::<bool>::parse(&BOOL, "1"), Err("true or false".into()));
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(SERVERS.parse(" a:1 , b:2,, "), Ok(vec!["a:1".to_owned(), "b:2".to_owned()]));
        assert_eq!(SERVERS.parse("[::1]:9092"), Ok(vec!["[::1]:9092".to_owned()]));
        assert_eq!(SERVERS.parse(""), Ok(vec![]));
        for bad in ["a", "a:b", ":1", "a:1,b", "a:70000"] {
            assert_eq!(SERVERS.parse(bad), Err("a comma-separated list of host:port".into()), "{bad:?}");
        }
        let java = "org.apache.kafka.clients.consumer.RoundRobinAssignor, range";
        assert_eq!(ASSIGNORS.parse(java), Ok(vec![Assignor::RoundRobin, Assignor::Range]));
        assert_eq!(ASSIGNORS.show(&vec![Assignor::RoundRobin, Assignor::Range]), "roundrobin,range");
        let java_default = "range,org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
        assert_eq!(ASSIGNORS.parse(java_default), Ok(vec![Assignor::Range, Assignor::CooperativeSticky]));
        assert_eq!(ASSIGNORS.parse("cooperative-sticky"), Ok(vec![Assignor::CooperativeSticky]));
        for bad in ["", "sticky", "range,StickyAssignor"] {
            assert!(ASSIGNORS.parse(bad).unwrap_err().contains("sticky is not supported"), "{bad:?}");
        }
    }

    #[test]
    fn optional_text_is_unset_by_an_empty_value() {
        assert_eq!(Kind::<Option<String>>::parse(&TEXT, ""), Ok(None));
        assert_eq!(Kind::<Option<String>>::parse(&TEXT, "m-1"), Ok(Some("m-1".into())));
    }
}
