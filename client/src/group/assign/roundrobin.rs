//! `roundrobin`, as Java's `RoundRobinAssignor` deals partitions out: one
//! at a time, in turn, over the members subscribed to each.

use super::{Group, TopicPartition};

/// Java's `RoundRobinAssignor`: all partitions sorted, dealt in turn to the
/// sorted members, skipping members not subscribed to the partition's topic.
pub(super) fn round_robin<'a>(group: &Group<'a>) -> Vec<Vec<TopicPartition<'a>>> {
    let mut out = vec![Vec::new(); group.members.len()];
    let order = group.java_order();
    let mut next = 0;
    for (topic, partition) in group.all_partitions() {
        let subscribed = |k: &usize| group.members[order[(next + k) % order.len()]].topics.contains(topic);
        // all_partitions only lists topics someone subscribes to, so this finds one.
        if let Some(skip) = (0..order.len()).find(subscribed) {
            let slot = (next + skip) % order.len();
            out[order[slot]].push((topic, partition));
            next = slot + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::group::assign::Assignor;
    use crate::group::assign::tests::{counts, flat, member};

    #[test]
    fn round_robin_matches_java_doc_examples() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let result = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(flat(&result)["C0"], [("t0", 0), ("t0", 2), ("t1", 1)]);
        assert_eq!(flat(&result)["C1"], [("t0", 1), ("t1", 0), ("t1", 2)]);

        let members = [member("C0", &["t0"]), member("C1", &["t0", "t1"]), member("C2", &["t0", "t1", "t2"])];
        let result = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(flat(&result)["C0"], [("t0", 0)]);
        assert_eq!(flat(&result)["C1"], [("t1", 0)]);
        assert_eq!(flat(&result)["C2"], [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]);
    }
}
