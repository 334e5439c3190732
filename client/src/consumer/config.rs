//! The consumer's settings: [`ConsumerConfig`] with its `validate`, and one
//! table of them by Kafka name over it and its members
//! [`GroupConfig`](crate::GroupConfig) and [`FetchConfig`](crate::FetchConfig),
//! whose `Default`s hold the values.

use std::time::Duration;

use super::Error;
use crate::config::value::{ASSIGNORS, BOOL, Choice, INT_AT_LEAST_0, INT_AT_LEAST_1, MS_INT, MS_LONG, TEXT};
use crate::config::{Role, Setting, role_config, setting};
use crate::fetch::FetchConfig;
use crate::group::GroupConfig;

/// Consumer settings with the Java client's names and defaults, except
/// `auto.offset.reset` (earliest here) and `isolation.level` (read_committed,
/// as in librdkafka). Each can also be set by its Kafka name
/// ([`set`](Self::set), by the table below) or from a
/// properties file ([`from_properties`](Self::from_properties)).
///
/// ```
/// use cafe_kafka::{ConsumerConfig, IsolationLevel};
///
/// let mut config = ConsumerConfig::default();
/// config.set("group.id", "g")?;
/// config.set("fetch.max.wait.ms", "100")?;
/// config.set("isolation.level", "read_uncommitted")?;
/// assert_eq!(config.group.group_id, "g");
/// assert_eq!(config.fetch.isolation, IsolationLevel::ReadUncommitted);
/// assert!(config.set("acks", "all").is_err()); // a producer setting
/// # Ok::<(), cafe_kafka::config::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Group membership: id, topics or pattern, timeouts, auto-commit.
    pub group: GroupConfig,
    /// What and how much to fetch.
    pub fetch: FetchConfig,
    /// `max.poll.records`: the most records one `poll` returns, so the caller
    /// comes back (and the member reacts to a rebalance) often enough.
    pub max_poll_records: usize,
    /// How long `close` may take for its final commit and LeaveGroup.
    pub close_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group: GroupConfig::default(),
            fetch: FetchConfig::default(),
            max_poll_records: 500,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl ConsumerConfig {
    /// Rejects settings the group or the broker would refuse, before connecting.
    pub fn validate(&self) -> Result<(), Error> {
        let g = &self.group;
        let bad = |s: &str| Err(Error::Config(s.to_owned()));
        if g.group_id.trim().is_empty() {
            return Err(Error::NoGroupId);
        }
        match &g.topic_pattern {
            Some(p) if p.is_empty() => return bad("the topic pattern must not be empty"),
            Some(_) => {}
            None if g.topics.is_empty() || g.topics.iter().any(|t| t.trim().is_empty()) => {
                return Err(Error::NoTopics);
            }
            None => {}
        }
        if g.heartbeat_interval >= g.session_timeout {
            return bad("heartbeat.interval.ms must be lower than session.timeout.ms");
        }
        if g.auto_commit_interval.is_zero() {
            return bad("auto.commit.interval.ms must be positive");
        }
        if self.max_poll_records == 0 {
            return Err(Error::Config("max.poll.records must be at least 1".into()));
        }
        if g.metadata_max_age.is_zero() {
            return bad("metadata.max.age.ms must be positive");
        }
        if let Some((key, instead)) = classic_only_setting(g) {
            return Err(Error::ClassicOnly { key, instead });
        }
        if g.remote_assignor.is_some() && g.protocol == crate::GroupProtocol::Classic {
            // As Java: it would be ignored, and the user meant the consumer protocol.
            return bad("group.remote.assignor needs group.protocol=consumer");
        }
        if g.group_instance_id.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return bad("group.instance.id must not be empty when given");
        }
        self.fetch.validate().map_err(Error::Config)
    }
}

/// The first classic-protocol setting given with `group.protocol=consumer`, and
/// what decides it there. Java refuses these when set at all; a struct cannot
/// tell an explicit default from none, so here a value other than Java's
/// default counts as set.
fn classic_only_setting(g: &GroupConfig) -> Option<(&'static str, &'static str)> {
    if g.protocol != crate::GroupProtocol::Consumer {
        return None;
    }
    let java = GroupConfig::default();
    [
        (
            g.assignors != java.assignors,
            "partition.assignment.strategy",
            "the broker assigns; pick its assignor with group.remote.assignor",
        ),
        (
            g.session_timeout != java.session_timeout,
            "session.timeout.ms",
            "the broker's group.consumer.session.timeout.ms applies",
        ),
        (
            g.heartbeat_interval != java.heartbeat_interval,
            "heartbeat.interval.ms",
            "the broker's group.consumer.heartbeat.interval.ms applies",
        ),
    ]
    .into_iter()
    .find_map(|(set, key, instead)| set.then_some((key, instead)))
}

/// The consumer's settings. `request.timeout.ms` is the connection's
/// ([`ClientConfig`](crate::ClientConfig)); `topics` and the topic pattern are
/// what `subscribe` takes in Java, not settings.
pub(crate) static SETTINGS: &[Setting<ConsumerConfig>] = &[
    setting!("group.id" => group.group_id: TEXT),
    setting!("group.instance.id" => group.group_instance_id: TEXT),
    setting!("client.rack" => group.client_rack: TEXT),
    setting!("group.protocol" => group.protocol: Choice("classic or consumer")),
    setting!("group.remote.assignor" => group.remote_assignor: TEXT),
    setting!("partition.assignment.strategy" => group.assignors: ASSIGNORS),
    setting!("session.timeout.ms" => group.session_timeout: MS_INT),
    setting!("heartbeat.interval.ms" => group.heartbeat_interval: MS_INT),
    setting!("max.poll.interval.ms" => group.rebalance_timeout: MS_INT),
    setting!("enable.auto.commit" => group.enable_auto_commit: BOOL),
    setting!("auto.commit.interval.ms" => group.auto_commit_interval: MS_INT),
    setting!("metadata.max.age.ms" => group.metadata_max_age: MS_LONG),
    setting!("retry.backoff.ms" => group.backoff.initial: MS_LONG),
    setting!("retry.backoff.max.ms" => group.backoff.max: MS_LONG),
    setting!("fetch.min.bytes" => fetch.min_bytes: INT_AT_LEAST_0),
    setting!("fetch.max.wait.ms" => fetch.max_wait: MS_INT),
    setting!("fetch.max.bytes" => fetch.max_bytes: INT_AT_LEAST_0),
    setting!("max.partition.fetch.bytes" => fetch.max_partition_bytes: INT_AT_LEAST_0),
    setting!("isolation.level" => fetch.isolation: Choice("read_committed or read_uncommitted")),
    setting!("check.crcs" => fetch.check_crcs: BOOL),
    setting!("auto.offset.reset" => fetch.reset: Choice("earliest, latest or none")),
    setting!("max.poll.records" => max_poll_records: INT_AT_LEAST_1),
];

role_config!(ConsumerConfig, Role::Consumer, SETTINGS);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::group::assign::Assignor;
    use crate::{IsolationLevel, OffsetReset};

    #[test]
    fn every_key_sets_its_field() {
        type Check = fn(&ConsumerConfig) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("group.id", "g", |c| c.group.group_id == "g"),
            ("group.instance.id", "member-1", |c| c.group.group_instance_id.as_deref() == Some("member-1")),
            ("client.rack", "rack-a", |c| c.group.client_rack.as_deref() == Some("rack-a")),
            ("group.protocol", "CONSUMER", |c| c.group.protocol == crate::GroupProtocol::Consumer),
            ("group.remote.assignor", "range", |c| c.group.remote_assignor.as_deref() == Some("range")),
            ("partition.assignment.strategy", "roundrobin", |c| c.group.assignors == [Assignor::RoundRobin]),
            ("session.timeout.ms", "10000", |c| c.group.session_timeout == Duration::from_secs(10)),
            ("heartbeat.interval.ms", "1000", |c| c.group.heartbeat_interval == Duration::from_secs(1)),
            ("max.poll.interval.ms", "60000", |c| c.group.rebalance_timeout == Duration::from_secs(60)),
            ("enable.auto.commit", "false", |c| !c.group.enable_auto_commit),
            ("auto.commit.interval.ms", "100", |c| c.group.auto_commit_interval == Duration::from_millis(100)),
            ("metadata.max.age.ms", "1000", |c| c.group.metadata_max_age == Duration::from_secs(1)),
            ("retry.backoff.ms", "10", |c| c.group.backoff.initial == Duration::from_millis(10)),
            ("retry.backoff.max.ms", "20", |c| c.group.backoff.max == Duration::from_millis(20)),
            ("fetch.min.bytes", "1024", |c| c.fetch.min_bytes == 1024),
            ("fetch.max.wait.ms", "100", |c| c.fetch.max_wait == Duration::from_millis(100)),
            ("fetch.max.bytes", "1000000", |c| c.fetch.max_bytes == 1_000_000),
            ("max.partition.fetch.bytes", "65536", |c| c.fetch.max_partition_bytes == 65_536),
            ("isolation.level", "read_uncommitted", |c| c.fetch.isolation == IsolationLevel::ReadUncommitted),
            ("check.crcs", "false", |c| !c.fetch.check_crcs),
            ("auto.offset.reset", "none", |c| c.fetch.reset == OffsetReset::Error),
            ("max.poll.records", "10", |c| c.max_poll_records == 10),
        ];
        let tested: Vec<&str> = cases.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(tested, Role::Consumer.keys(), "one case per key of the table, in its order");
        for (key, value, check) in cases {
            let mut c = ConsumerConfig::default();
            assert!(!check(&c), "{key}={value} is the default already: pick another value");
            c.set(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(check(&c), "{key}={value} gave {c:?}");
        }
    }

    #[test]
    fn invalid_values_name_the_key_the_value_and_what_is_accepted() {
        let mut c = ConsumerConfig::default();
        let cases = [
            ("isolation.level", "committed", "read_committed or read_uncommitted"),
            ("auto.offset.reset", "smallest", "earliest, latest or none"),
            ("enable.auto.commit", "on", "true or false"),
            ("max.poll.records", "0", "a whole number from 1 to 2147483647"),
            ("fetch.min.bytes", "-1", "a whole number from 0 to 2147483647"),
            ("group.protocol", "cooperative", "classic or consumer"),
        ];
        for (key, value, expected) in cases {
            let e = c.set(key, value).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid value `{value}` for `{key}`: expected {expected}"));
        }
    }

    #[test]
    fn cooperative_sticky_is_accepted_alone_or_in_javas_default_list() {
        use crate::RebalanceProtocol;
        let mut c = ConsumerConfig::default();
        c.set("partition.assignment.strategy", "cooperative-sticky").unwrap();
        assert_eq!(c.group.assignors, [Assignor::CooperativeSticky]);
        assert_eq!(RebalanceProtocol::of(&c.group.assignors), RebalanceProtocol::Cooperative);
        c.set("partition.assignment.strategy", "range, cooperative-sticky").unwrap();
        assert_eq!(c.group.assignors, [Assignor::Range, Assignor::CooperativeSticky]);
        assert_eq!(RebalanceProtocol::of(&c.group.assignors), RebalanceProtocol::Eager);
        assert_eq!(c.get("partition.assignment.strategy").as_deref(), Some("range,cooperative-sticky"));
    }

    #[test]
    fn a_remote_assignor_needs_the_consumer_protocol() {
        let mut c = ConsumerConfig::default();
        c.group.group_id = "g".into();
        c.group.topics = vec!["t".into()];
        c.set("group.remote.assignor", "uniform").unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.to_string(), "invalid consumer setting: group.remote.assignor needs group.protocol=consumer");
        c.set("group.protocol", "consumer").unwrap();
        c.validate().expect("valid with the consumer protocol");
    }

    #[test]
    fn classic_only_settings_are_refused_with_the_consumer_protocol() {
        for (key, value) in [
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ] {
            let mut c = ConsumerConfig::default();
            c.group.group_id = "g".into();
            c.group.topics = vec!["t".into()];
            c.set(key, value).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{key} is a classic setting: {e}"));
            c.set("group.protocol", "consumer").unwrap();
            let e = c.validate().unwrap_err();
            assert!(matches!(e, Error::ClassicOnly { key: k, .. } if k == key), "{key}: {e:?}");
            assert!(
                e.to_string().starts_with(&format!(
                    "invalid consumer setting: `{key}` is not supported with group.protocol=consumer ("
                )),
                "{e}"
            );
        }
        let mut c = ConsumerConfig::default();
        c.group.group_id = "g".into();
        c.group.topics = vec!["t".into()];
        c.set("group.protocol", "consumer").unwrap();
        c.set("max.poll.interval.ms", "60000").unwrap();
        c.validate().expect("max.poll.interval.ms is the consumer protocol's rebalance timeout too");
    }

    #[test]
    fn an_empty_group_instance_id_unsets_it() {
        let mut c = ConsumerConfig::default();
        c.set("group.instance.id", "m").unwrap();
        c.set("group.instance.id", "").unwrap();
        assert_eq!(c.group.group_instance_id, None);
    }

    #[test]
    fn enums_write_back_as_java_spells_them() {
        let c = ConsumerConfig::default();
        assert_eq!(c.get("isolation.level").as_deref(), Some("read_committed"));
        assert_eq!(c.get("auto.offset.reset").as_deref(), Some("earliest"));
        assert_eq!(c.get("partition.assignment.strategy").as_deref(), Some("range"));
        assert_eq!(c.get("acks"), None);
    }
}
