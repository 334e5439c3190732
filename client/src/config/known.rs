//! Why a key has no row in a role's table: another role has it, it is a Kafka
//! client setting not implemented yet, or it is not a setting at all (then the
//! closest known key is suggested).

use super::{Error, Role};

/// Settings of the Java producer, consumer and common client configs (Kafka
/// 4.1) that no table implements. Refused as "not supported yet", never
/// ignored: a file asking for TLS must not silently connect in plain text.
const UNSUPPORTED: &[&str] = &[
    // common
    "client.dns.lookup",
    "config.providers",
    "connections.max.idle.ms",
    "default.api.timeout.ms",
    "enable.metrics.push",
    "interceptor.classes",
    "metadata.max.idle.ms",
    "metadata.recovery.rebootstrap.trigger.ms",
    "metadata.recovery.strategy",
    "metric.reporters",
    "receive.buffer.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "security.providers",
    "send.buffer.bytes",
    "socket.connection.setup.timeout.max.ms",
    // producer
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "key.serializer",
    "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms",
    "partitioner.ignore.keys",
    "retries",
    "transaction.two.phase.commit.enable",
    "value.serializer",
    // consumer
    "allow.auto.create.topics",
    "exclude.internal.topics",
    "key.deserializer",
    "value.deserializer",
];

/// Whole families not implemented: the TLS and SASL keys without a row
/// (JKS keystores, Kerberos, OAuth token endpoints...), metrics, share groups.
const UNSUPPORTED_PREFIXES: &[&str] = &["ssl.", "sasl.", "metrics.", "share.", "internal."];

pub(crate) fn is_unsupported(key: &str) -> bool {
    UNSUPPORTED.contains(&key) || (UNSUPPORTED_PREFIXES.iter().any(|p| key.starts_with(p)) && !Role::Client.knows(key))
}

/// The error for `key` set on `role`, whose table has no row for it.
pub(crate) fn not_for(role: Role, key: &str) -> Error {
    if let Some(owner) = Role::ALL.into_iter().find(|r| *r != role && r.knows(key)) {
        return Error::OtherRole { key: key.to_owned(), role, owner };
    }
    if is_unsupported(key) {
        return Error::Unsupported { key: key.to_owned() };
    }
    Error::Unknown { key: key.to_owned(), suggestion: closest(key) }
}

/// The known key nearest to `key` in edit distance, if it is near enough to be
/// a typo (a third of the key's length, and at most 3 edits).
fn closest(key: &str) -> Option<&'static str> {
    let known = Role::ALL.into_iter().flat_map(Role::keys).chain(UNSUPPORTED.iter().copied());
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known.map(|k| (edit_distance(key, k), k)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

/// Levenshtein distance (insertions, deletions, substitutions), by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("acks", "acks"), 0);
        assert_eq!(edit_distance("ack", "acks"), 1);
        assert_eq!(edit_distance("group_id", "group.id"), 1);
        assert_eq!(edit_distance("lingr.ms", "linger.ms"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(closest("linger.msec"), Some("linger.ms"));
        assert_eq!(closest("colour.scheme"), None);
        assert_eq!(closest("lingr.ms"), Some("linger.ms"));
        assert_eq!(closest("compresion.type"), Some("compression.type"));
        assert_eq!(closest("transactional.ids"), Some("transactional.id"));
        assert_eq!(closest("x"), None);
    }
}
