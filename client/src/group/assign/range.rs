//! `range`, as Java's `RangeAssignor` deals partitions out: per topic,
//! consecutive ranges to the subscribers in member order.

use super::{Group, TopicPartition};

/// Java's `RangeAssignor`: per topic, the sorted subscribers each take a
/// contiguous range; the first `count % subscribers` take one extra.
pub(super) fn range<'a>(group: &Group<'a>) -> Vec<Vec<TopicPartition<'a>>> {
    let mut out = vec![Vec::new(); group.members.len()];
    let order = group.java_order();
    for (topic, count) in group.subscribed_topics() {
        let subscribers: Vec<usize> =
            order.iter().copied().filter(|&i| group.members[i].topics.contains(topic)).collect();
        for (slot, &member) in subscribers.iter().enumerate() {
            out[member].extend(range_slice(count, subscribers.len(), slot).map(|p| (topic, p)));
        }
    }
    out
}

/// Partitions for the `slot`-th of `members` subscribers of a `count`-partition topic.
fn range_slice(count: i32, members: usize, slot: usize) -> std::ops::Range<i32> {
    // i64 so neither member counts nor products can overflow; results lie in 0..=count.
    let (n, m, i) = (i64::from(count), members as i64, slot as i64);
    let (per_member, with_extra) = (n / m, n % m);
    let start = per_member * i + i.min(with_extra);
    let len = per_member + i64::from(i < with_extra);
    let clamp = |x: i64| i32::try_from(x.min(n)).unwrap_or(count);
    clamp(start)..clamp(start + len)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::group::assign::Assignor;
    use crate::group::assign::tests::{counts, flat, group_strategy, member};

    #[test]
    fn range_matches_java_doc_example() {
        let members = [member("C1", &["t0", "t1"]), member("C0", &["t0", "t1"])];
        let result = Assignor::Range.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(flat(&result)["C0"], [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]);
        assert_eq!(flat(&result)["C1"], [("t0", 2), ("t1", 2)]);
    }

    #[test]
    fn range_orders_static_members_by_instance_id_first() {
        let mut c3 = member("C3", &["t0"]);
        c3.group_instance_id = Some("I0".into());
        let mut c2 = member("C2", &["t0"]);
        c2.group_instance_id = Some("I1".into());
        let dynamic = member("A", &["t0"]);
        let result = Assignor::Range.assign(&[dynamic, c2, c3], &counts(&[("t0", 3)]));
        assert_eq!(flat(&result)["C3"], [("t0", 0)]);
        assert_eq!(flat(&result)["C2"], [("t0", 1)]);
        assert_eq!(flat(&result)["A"], [("t0", 2)]);
    }

    proptest! {
        #[test]
        fn range_is_balanced_per_topic((members, counts) in group_strategy(true)) {
            let result = Assignor::Range.assign(&members, &counts);
            for topic in counts.keys() {
                let sizes: Vec<usize> = result.values()
                    .map(|a| a.partitions.get(topic).map_or(0, Vec::len)).collect();
                let subscribed = members[0].subscription.topics.contains(topic);
                let (lo, hi) = (sizes.iter().min().copied().unwrap_or(0), sizes.iter().max().copied().unwrap_or(0));
                prop_assert!(!subscribed || hi - lo <= 1);
            }
        }
    }
}
