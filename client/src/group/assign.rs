//! Partition assignors the group leader runs: `range`, `roundrobin` and
//! `cooperative-sticky`, as pure functions from member subscriptions and
//! partition counts to one `Assignment` per member.
//!
//! They follow Kafka's Java assignors (`RangeAssignor`, `RoundRobinAssignor`,
//! `CooperativeStickyAssignor`) without rack awareness, so a mixed Java/cafe-kafka
//! group gets the same assignment whichever member leads. Every map is a
//! `BTreeMap` and ties are broken by member id, so the result never depends
//! on the order members are listed in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::consumer_protocol::{Assignment, NO_GENERATION, Subscription};

/// One member of the JoinGroup response, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Its topics and owned partitions, decoded from its JoinGroup metadata.
    pub subscription: Subscription,
}

/// The assignment strategies this client can run, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// `range` (Java's `RangeAssignor`): per topic, consecutive partition
    /// ranges to members in member-id order; the first members get one extra
    /// when the count does not divide. Eager.
    Range,
    /// `roundrobin` (`RoundRobinAssignor`): all subscribed partitions dealt out
    /// one at a time over the members subscribed to them. Eager.
    RoundRobin,
    /// `cooperative-sticky` (`CooperativeStickyAssignor`, KIP-429): member
    /// counts differ by at most one, owned partitions stay where they are when
    /// balance allows, and a partition that moves is revoked first and assigned
    /// in a follow-up rebalance.
    CooperativeSticky,
}

impl Assignor {
    /// Every assignor this client implements.
    pub const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::CooperativeSticky];

    /// Protocol name sent in JoinGroup; must match the Java client's.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor the coordinator chose, by its protocol name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// True when members keep their partitions during a rebalance and give up
    /// only those missing from their new assignment (KIP-429); false means
    /// eager: revoke everything before rejoining.
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }

    /// `user_data` for this assignor's subscription. Java's cooperative-sticky
    /// puts the generation there (int32) so that members reading a v0/v1
    /// subscription, which has no `generation_id`, still learn it.
    pub fn subscription_user_data(self, generation_id: i32) -> Option<Bytes> {
        match self {
            Assignor::CooperativeSticky => Some(Bytes::copy_from_slice(&generation_id.to_be_bytes())),
            Assignor::Range | Assignor::RoundRobin => None,
        }
    }

    /// Assigns the partitions of subscribed topics. `partitions_per_topic` comes
    /// from metadata; subscribed topics missing from it are skipped (as Java
    /// does). Every member appears in the result, possibly with nothing.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Assignment> {
        let group = Group::new(members, partitions_per_topic);
        let per_member = match self {
            Assignor::Range => range(&group),
            Assignor::RoundRobin => round_robin(&group),
            Assignor::CooperativeSticky => sticky::cooperative(&group),
        };
        group.into_assignments(per_member)
    }
}

/// A topic-partition, ordered by topic then partition.
type TopicPartition<'a> = (&'a str, i32);

/// Members and metadata in a canonical order, shared by all assignors.
struct Group<'a> {
    /// Sorted by member id; a duplicated member id keeps its first entry.
    members: Vec<Member<'a>>,
    /// Topics that exist and have at least one partition.
    counts: BTreeMap<&'a str, i32>,
}

struct Member<'a> {
    id: &'a str,
    instance_id: Option<&'a str>,
    topics: BTreeSet<&'a str>,
    subscription: &'a Subscription,
}

impl<'a> Group<'a> {
    fn new(members: &'a [MemberSubscription], partitions_per_topic: &'a BTreeMap<String, i32>) -> Self {
        let mut by_id: BTreeMap<&str, Member<'a>> = BTreeMap::new();
        for m in members {
            by_id.entry(&m.member_id).or_insert_with(|| Member {
                id: &m.member_id,
                instance_id: m.group_instance_id.as_deref(),
                topics: m.subscription.topics.iter().map(String::as_str).collect(),
                subscription: &m.subscription,
            });
        }
        let counts = partitions_per_topic
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(topic, count)| (topic.as_str(), *count))
            .collect();
        Self { members: by_id.into_values().collect(), counts }
    }

    /// Member indices in Java's `MemberInfo` order: static members first, by
    /// `group.instance.id`; then dynamic members by member id. Keeps the range
    /// and round-robin layout stable across restarts of static members.
    fn java_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        order.sort_by_key(|&i| {
            let m = &self.members[i];
            (m.instance_id.is_none(), m.instance_id, m.id)
        });
        order
    }

    /// Topics (with partitions) that at least one member subscribes to.
    fn subscribed_topics(&self) -> impl Iterator<Item = (&'a str, i32)> + '_ {
        self.counts
            .iter()
            .filter(|(topic, _)| self.members.iter().any(|m| m.topics.contains(*topic)))
            .map(|(topic, count)| (*topic, *count))
    }

    /// Every partition of every subscribed topic, sorted.
    fn all_partitions(&self) -> Vec<TopicPartition<'a>> {
        self.subscribed_topics().flat_map(|(topic, count)| (0..count).map(move |p| (topic, p))).collect()
    }

    fn into_assignments(self, per_member: Vec<Vec<TopicPartition<'_>>>) -> BTreeMap<String, Assignment> {
        self.members
            .iter()
            .zip(per_member)
            .map(|(member, partitions)| (member.id.to_owned(), to_assignment(partitions)))
            .collect()
    }
}

fn to_assignment(partitions: Vec<TopicPartition<'_>>) -> Assignment {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.to_owned()).or_default().push(partition);
    }
    by_topic.values_mut().for_each(|ps| ps.sort_unstable());
    Assignment { partitions: by_topic, user_data: None }
}

/// Java's `RangeAssignor`: per topic, the sorted subscribers each take a
/// contiguous range; the first `count % subscribers` take one extra.
fn range<'a>(group: &Group<'a>) -> Vec<Vec<TopicPartition<'a>>> {
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

/// Java's `RoundRobinAssignor`: all partitions sorted, dealt in turn to the
/// sorted members, skipping members not subscribed to the partition's topic.
fn round_robin<'a>(group: &Group<'a>) -> Vec<Vec<TopicPartition<'a>>> {
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

/// `cooperative-sticky`: keep what members own while the group stays balanced,
/// and (KIP-429) never hand a partition to a new owner in the same round the old
/// owner gives it up.
///
/// With one shared subscription this is Java's "constrained" algorithm from
/// `AbstractStickyAssignor` (same quotas, same orders, so the same result).
/// With differing subscriptions Java runs a long general algorithm; here a
/// simpler one keeps owned partitions, gives each free partition to the least
/// loaded eligible member, then moves partitions from the most to the least
/// loaded eligible member until no move helps. It meets the same guarantees
/// (each partition once, only to subscribers, sticky where balance allows) but
/// may pick different partitions than a Java leader would.
mod sticky {
    use super::*;

    pub(super) fn cooperative<'a>(group: &Group<'a>) -> Vec<Vec<TopicPartition<'a>>> {
        let ownership = Ownership::resolve(group);
        let mut assignment =
            if all_subscriptions_equal(group) { constrained(group, &ownership) } else { general(group, &ownership) };
        // The old owner sees the partition missing and revokes it; the
        // follow-up rebalance then gives it to its new owner.
        for (member, partitions) in assignment.iter_mut().enumerate() {
            partitions.retain(|tp| !ownership.moves_away_from_another(tp, member));
        }
        assignment
    }

    fn all_subscriptions_equal(group: &Group<'_>) -> bool {
        group.members.windows(2).all(|pair| pair[0].topics == pair[1].topics)
    }

    /// Who validly owns what, after Java's conflict rules: among members
    /// claiming a partition the highest generation wins; a tie in the highest
    /// generation means nobody keeps it.
    struct Ownership<'a> {
        owner: BTreeMap<TopicPartition<'a>, usize>,
        contested: BTreeSet<TopicPartition<'a>>,
    }

    impl<'a> Ownership<'a> {
        fn resolve(group: &Group<'a>) -> Self {
            let mut claims: BTreeMap<TopicPartition<'a>, BTreeMap<usize, i32>> = BTreeMap::new();
            for (index, member) in group.members.iter().enumerate() {
                let generation = generation(member.subscription);
                for tp in valid_owned(group, member) {
                    claims.entry(tp).or_default().insert(index, generation);
                }
            }
            let mut ownership = Self { owner: BTreeMap::new(), contested: BTreeSet::new() };
            for (tp, claimants) in claims {
                let newest = claimants.values().copied().max().unwrap_or(NO_GENERATION);
                let mut winners = claimants.iter().filter(|(_, g)| **g == newest).map(|(i, _)| *i);
                match (winners.next(), winners.next()) {
                    (Some(only), None) => {
                        ownership.owner.insert(tp, only);
                    }
                    _ => {
                        ownership.contested.insert(tp);
                    }
                }
            }
            ownership
        }

        fn owned_by(&self, member: usize) -> Vec<TopicPartition<'a>> {
            self.owner.iter().filter(|(_, o)| **o == member).map(|(tp, _)| *tp).collect()
        }

        /// True when giving `tp` to `member` now could leave two owners at once.
        fn moves_away_from_another(&self, tp: &TopicPartition<'a>, member: usize) -> bool {
            self.contested.contains(tp) || self.owner.get(tp).is_some_and(|o| *o != member)
        }
    }

    /// Owned partitions that still exist and that the member still subscribes to.
    fn valid_owned<'a>(group: &Group<'a>, member: &Member<'a>) -> BTreeSet<TopicPartition<'a>> {
        let mut valid = BTreeSet::new();
        for owned in &member.subscription.owned_partitions {
            let Some((&topic, &count)) = group.counts.get_key_value(owned.topic.as_str()) else {
                continue;
            };
            if member.topics.contains(topic) {
                valid.extend(owned.partitions.iter().filter(|p| (0..count).contains(*p)).map(|p| (topic, *p)));
            }
        }
        valid
    }

    /// Java's `CooperativeStickyAssignor.memberData`: the v2+ `generation_id`
    /// field, else the int32 the assignor put in `user_data`.
    pub(super) fn generation(subscription: &Subscription) -> i32 {
        if subscription.generation_id >= 0 {
            return subscription.generation_id;
        }
        match subscription.user_data.as_deref() {
            Some([a, b, c, d, ..]) => i32::from_be_bytes([*a, *b, *c, *d]),
            _ => NO_GENERATION,
        }
    }

    /// Members' partition counts the constrained algorithm aims for.
    struct Quotas {
        min: usize,
        max: usize,
        /// How many members end with `max` (0 when `min == max`).
        expected_over_min: usize,
        over_min: usize,
    }

    /// Java's `ConstrainedAssignmentBuilder` without racks: every member ends
    /// with `floor(total / n)` or one more partitions.
    fn constrained<'a>(group: &Group<'a>, ownership: &Ownership<'a>) -> Vec<Vec<TopicPartition<'a>>> {
        let all = group.all_partitions();
        let n = group.members.len().max(1);
        let mut quotas =
            Quotas { min: all.len() / n, max: all.len().div_ceil(n), expected_over_min: all.len() % n, over_min: 0 };
        let mut assignment = vec![Vec::new(); group.members.len()];
        let mut under_min = Vec::new();
        let mut exactly_min = VecDeque::new();
        for (member, kept) in assignment.iter_mut().enumerate() {
            let mut owned = ownership.owned_by(member);
            // Java keeps the lowest partition numbers first, across topics.
            owned.sort_by_key(|(topic, partition)| (*partition, *topic));
            if owned.len() < quotas.min {
                under_min.push(member);
            } else if owned.len() >= quotas.max && quotas.over_min < quotas.expected_over_min {
                owned.truncate(quotas.max);
                quotas.over_min += 1;
                if quotas.over_min == quotas.expected_over_min {
                    exactly_min.clear();
                }
            } else {
                owned.truncate(quotas.min);
                if quotas.over_min < quotas.expected_over_min {
                    exactly_min.push_back(member);
                }
            }
            *kept = owned;
        }
        let taken: BTreeSet<TopicPartition<'a>> = assignment.iter().flatten().copied().collect();
        let unassigned = all.into_iter().filter(|tp| !taken.contains(tp));
        fill_round_robin(&mut assignment, unassigned, under_min, exactly_min, quotas.min);
        assignment
    }

    /// Java's `assignRoundRobin`: deal to members below the minimum in turn;
    /// once all reach it, top up members waiting at exactly the minimum.
    fn fill_round_robin<'a>(
        assignment: &mut [Vec<TopicPartition<'a>>],
        unassigned: impl Iterator<Item = TopicPartition<'a>>,
        mut under_min: Vec<usize>,
        mut exactly_min: VecDeque<usize>,
        min_quota: usize,
    ) {
        let mut cursor = 0;
        for tp in unassigned {
            if !under_min.is_empty() {
                if cursor >= under_min.len() {
                    cursor = 0;
                }
                let member = under_min[cursor];
                assignment[member].push(tp);
                if assignment[member].len() == min_quota {
                    under_min.remove(cursor);
                    exactly_min.push_back(member);
                } else {
                    cursor += 1;
                }
            } else if let Some(member) = exactly_min.pop_front() {
                assignment[member].push(tp);
            } else if let Some(member) = least_loaded(assignment, 0..assignment.len()) {
                // Unreachable if the quotas add up (Java throws here); assigning
                // beats dropping a partition.
                assignment[member].push(tp);
            }
        }
    }

    fn least_loaded(assignment: &[Vec<TopicPartition<'_>>], candidates: impl Iterator<Item = usize>) -> Option<usize> {
        candidates.min_by_key(|&m| (assignment[m].len(), m))
    }

    /// Differing subscriptions: keep owned, place free partitions (those with
    /// fewest eligible members first) on the least loaded eligible member, then
    /// rebalance.
    fn general<'a>(group: &Group<'a>, ownership: &Ownership<'a>) -> Vec<Vec<TopicPartition<'a>>> {
        let eligible = Eligible::new(group);
        let mut assignment: Vec<Vec<TopicPartition<'a>>> =
            (0..group.members.len()).map(|m| ownership.owned_by(m)).collect();
        let mut free: Vec<(usize, TopicPartition<'a>)> = group
            .all_partitions()
            .into_iter()
            .filter(|tp| !ownership.owner.contains_key(tp))
            .map(|tp| (eligible.of(tp.0).len(), tp))
            .collect();
        free.sort_unstable();
        for (_, tp) in free {
            if let Some(member) = least_loaded(&assignment, eligible.of(tp.0).iter().copied()) {
                assignment[member].push(tp);
            }
        }
        while let Some((tp, from, to)) = best_move(&assignment, &eligible) {
            assignment[from].retain(|p| *p != tp);
            assignment[to].push(tp);
        }
        assignment
    }

    /// Members subscribed to each topic, by member index.
    struct Eligible<'a>(BTreeMap<&'a str, Vec<usize>>);

    impl<'a> Eligible<'a> {
        fn new(group: &Group<'a>) -> Self {
            let subscribers = |topic: &str| -> Vec<usize> {
                group.members.iter().enumerate().filter(|(_, m)| m.topics.contains(topic)).map(|(i, _)| i).collect()
            };
            Self(group.counts.keys().map(|topic| (*topic, subscribers(topic))).collect())
        }

        fn of(&self, topic: &str) -> &[usize] {
            self.0.get(topic).map_or(&[], Vec::as_slice)
        }
    }

    /// The move from a more to a less loaded eligible member that narrows the
    /// gap most. Each move lowers the sum of squared loads, so the loop ends.
    fn best_move<'a>(
        assignment: &[Vec<TopicPartition<'a>>],
        eligible: &Eligible<'_>,
    ) -> Option<(TopicPartition<'a>, usize, usize)> {
        let mut best: Option<(usize, TopicPartition<'a>, usize, usize)> = None;
        for (from, partitions) in assignment.iter().enumerate() {
            for tp in partitions {
                for &to in eligible.of(tp.0) {
                    let gap = partitions.len().saturating_sub(assignment[to].len());
                    if gap >= 2 && best.is_none_or(|(g, ..)| gap > g) {
                        best = Some((gap, *tp, from, to));
                    }
                }
            }
        }
        best.map(|(_, tp, from, to)| (tp, from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicPartition;
    use crate::group::consumer_protocol::TopicPartitions;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription::new(topics.iter().copied()),
        }
    }

    fn owning(mut m: MemberSubscription, generation: i32, owned: &[(&str, &[i32])]) -> MemberSubscription {
        m.subscription.generation_id = generation;
        m.subscription.owned_partitions = owned
            .iter()
            .map(|(topic, ps)| TopicPartitions { topic: (*topic).into(), partitions: ps.to_vec() })
            .collect();
        m
    }

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| ((*t).to_string(), *n)).collect()
    }

    /// The result as `member -> [(topic, partition)]`, for compact assertions.
    fn flat(result: &BTreeMap<String, Assignment>) -> BTreeMap<&str, Vec<(&str, i32)>> {
        result
            .iter()
            .map(|(m, a)| {
                let tps = a.partitions.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)));
                (m.as_str(), tps.collect())
            })
            .collect()
    }

    #[test]
    fn names_match_the_java_client() {
        for assignor in Assignor::ALL {
            assert_eq!(Assignor::from_name(assignor.name()), Some(assignor));
        }
        assert_eq!(Assignor::CooperativeSticky.name(), "cooperative-sticky");
        assert_eq!(Assignor::from_name("sticky"), None);
        assert!(Assignor::CooperativeSticky.is_cooperative() && !Assignor::Range.is_cooperative());
    }

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

    #[test]
    fn members_with_nothing_still_appear() {
        let members = [member("a", &["t0"]), member("b", &["t0"]), member("c", &["missing"])];
        for assignor in Assignor::ALL {
            let result = assignor.assign(&members, &counts(&[("t0", 1)]));
            assert_eq!(result.len(), 3, "{assignor:?}");
            assert!(result["b"].is_empty() && result["c"].is_empty(), "{assignor:?}");
        }
    }

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

    #[test]
    fn cooperative_sticky_fresh_group_is_dealt_in_turn() {
        let members = [member("a", &["t"]), member("b", &["t"]), member("c", &["t"])];
        let result = Assignor::CooperativeSticky.assign(&members, &counts(&[("t", 6)]));
        assert_eq!(flat(&result)["a"], [("t", 0), ("t", 3)]);
        assert_eq!(flat(&result)["b"], [("t", 1), ("t", 4)]);
        assert_eq!(flat(&result)["c"], [("t", 2), ("t", 5)]);
    }

    #[test]
    fn cooperative_sticky_revokes_first_then_moves() {
        let t = counts(&[("t", 6)]);
        let round1 = [
            owning(member("a", &["t"]), 1, &[("t", &[0, 1, 2])]),
            owning(member("b", &["t"]), 1, &[("t", &[3, 4, 5])]),
            member("c", &["t"]),
        ];
        let result = Assignor::CooperativeSticky.assign(&round1, &t);
        // a and b give up 2 and 5; c gets nothing until they have.
        assert_eq!(flat(&result)["a"], [("t", 0), ("t", 1)]);
        assert_eq!(flat(&result)["b"], [("t", 3), ("t", 4)]);
        assert!(result["c"].is_empty());

        let round2 = [
            owning(member("a", &["t"]), 2, &[("t", &[0, 1])]),
            owning(member("b", &["t"]), 2, &[("t", &[3, 4])]),
            owning(member("c", &["t"]), 2, &[]),
        ];
        let result = Assignor::CooperativeSticky.assign(&round2, &t);
        assert_eq!(flat(&result)["a"], [("t", 0), ("t", 1)]);
        assert_eq!(flat(&result)["b"], [("t", 3), ("t", 4)]);
        assert_eq!(flat(&result)["c"], [("t", 2), ("t", 5)]);
    }

    #[test]
    fn cooperative_sticky_resolves_double_claims_by_generation() {
        let t = counts(&[("t", 2)]);
        // Same generation: nobody keeps p0 this round.
        let tie = [owning(member("a", &["t"]), 3, &[("t", &[0])]), owning(member("b", &["t"]), 3, &[("t", &[0])])];
        let result = Assignor::CooperativeSticky.assign(&tie, &t);
        assert!(flat(&result).values().all(|tps| !tps.contains(&("t", 0))));
        // Newer generation wins.
        let newer = [owning(member("a", &["t"]), 4, &[("t", &[0])]), owning(member("b", &["t"]), 3, &[("t", &[0])])];
        let result = Assignor::CooperativeSticky.assign(&newer, &t);
        assert_eq!(flat(&result)["a"], [("t", 0)]);
        assert_eq!(flat(&result)["b"], [("t", 1)]);
    }

    #[test]
    fn generation_falls_back_to_user_data() {
        let mut sub = Subscription::new(["t"]);
        sub.user_data = Assignor::CooperativeSticky.subscription_user_data(7);
        assert_eq!(sticky::generation(&sub), 7);
        sub.generation_id = 9;
        assert_eq!(sticky::generation(&sub), 9);
        sub.generation_id = NO_GENERATION;
        sub.user_data = Some(Bytes::from_static(&[1]));
        assert_eq!(sticky::generation(&sub), NO_GENERATION);
    }

    const TOPICS: [&str; 3] = ["t0", "t1", "t2"];

    /// Members over up to three topics; `shared` gives all the same subscription.
    fn group_strategy(shared: bool) -> impl Strategy<Value = (Vec<MemberSubscription>, BTreeMap<String, i32>)> {
        let member_spec = (1u8..8, any::<bool>(), -1i32..3, prop::collection::vec((0usize..3, 0i32..9), 0..6));
        (prop::collection::vec(member_spec, 1..7), 1u8..8, prop::collection::vec(prop::option::of(0i32..9), 3))
            .prop_map(move |(specs, shared_mask, topic_counts)| {
                let members = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (mask, is_static, generation, owned))| {
                        let mask = if shared { shared_mask } else { mask };
                        let topics: Vec<&str> =
                            TOPICS.iter().enumerate().filter(|(t, _)| mask & (1 << t) != 0).map(|(_, t)| *t).collect();
                        let mut m = member(&format!("m{i}"), &topics);
                        m.group_instance_id = is_static.then(|| format!("i{}", 9 - i));
                        m.subscription.generation_id = generation;
                        m.subscription.owned_partitions = owned
                            .into_iter()
                            .map(|(t, p)| TopicPartitions { topic: TOPICS[t].into(), partitions: vec![p] })
                            .collect();
                        m
                    })
                    .collect();
                let counts =
                    TOPICS.iter().zip(topic_counts).filter_map(|(t, n)| n.map(|n| ((*t).to_string(), n))).collect();
                (members, counts)
            })
    }

    /// Checks what holds for every assignor; returns how often each partition was given.
    fn check_common(
        assignor: Assignor,
        members: &[MemberSubscription],
        counts: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<TopicPartition, usize>, TestCaseError> {
        let result = assignor.assign(members, counts);
        let mut reversed = members.to_vec();
        reversed.reverse();
        prop_assert_eq!(&assignor.assign(&reversed, counts), &result, "depends on member order");
        prop_assert_eq!(result.len(), members.len());
        let mut given = BTreeMap::new();
        for m in members {
            for (topic, partitions) in &result[&m.member_id].partitions {
                prop_assert!(m.subscription.topics.contains(topic), "{} got unsubscribed {}", m.member_id, topic);
                for p in partitions {
                    prop_assert!((0..counts[topic]).contains(p));
                    *given.entry(TopicPartition::new(topic.as_str(), *p)).or_insert(0) += 1;
                }
            }
        }
        prop_assert!(given.values().all(|n| *n == 1), "a partition was given twice: {given:?}");
        Ok(given)
    }

    fn subscribed_partitions(members: &[MemberSubscription], counts: &BTreeMap<String, i32>) -> usize {
        let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.subscription.topics).collect();
        topics.iter().map(|t| counts.get(*t).copied().unwrap_or(0).max(0) as usize).sum()
    }

    fn spread(result: &BTreeMap<String, Assignment>) -> usize {
        let sizes: Vec<usize> = result.values().map(Assignment::len).collect();
        sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0)
    }

    proptest! {
        #[test]
        fn eager_assignors_give_every_partition_once((members, counts) in group_strategy(false)) {
            for assignor in [Assignor::Range, Assignor::RoundRobin] {
                let given = check_common(assignor, &members, &counts)?;
                prop_assert_eq!(given.len(), subscribed_partitions(&members, &counts));
            }
        }

        #[test]
        fn cooperative_sticky_never_double_assigns((members, counts) in group_strategy(false)) {
            check_common(Assignor::CooperativeSticky, &members, &counts)?;
            // Without owned partitions nothing is held back.
            let fresh: Vec<_> = members.iter().cloned().map(|mut m| { m.subscription.owned_partitions.clear(); m }).collect();
            let given = check_common(Assignor::CooperativeSticky, &fresh, &counts)?;
            prop_assert_eq!(given.len(), subscribed_partitions(&members, &counts));
        }

        #[test]
        fn shared_subscription_is_balanced((members, counts) in group_strategy(true)) {
            prop_assert!(spread(&Assignor::RoundRobin.assign(&members, &counts)) <= 1);
            // Cooperative: the round after revocations is complete, balanced and
            // keeps everything the first round handed out.
            let round1 = Assignor::CooperativeSticky.assign(&members, &counts);
            let round2_members: Vec<_> = members.iter().cloned().map(|mut m| {
                let a = &round1[&m.member_id];
                m.subscription.generation_id = 10;
                m.subscription.owned_partitions = a.partitions.iter()
                    .map(|(t, ps)| TopicPartitions { topic: t.clone(), partitions: ps.clone() }).collect();
                m
            }).collect();
            let given = check_common(Assignor::CooperativeSticky, &round2_members, &counts)?;
            prop_assert_eq!(given.len(), subscribed_partitions(&members, &counts));
            let round2 = Assignor::CooperativeSticky.assign(&round2_members, &counts);
            prop_assert!(spread(&round2) <= 1, "unbalanced: {:?}", round2);
            for (id, a) in &round1 {
                for (t, ps) in &a.partitions {
                    let kept = &round2[id].partitions[t];
                    prop_assert!(ps.iter().all(|p| kept.contains(p)), "{} lost {}", id, t);
                }
            }
        }

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
