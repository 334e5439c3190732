//! `cooperative-sticky`: keep what members own while the group stays balanced,
//! and (KIP-429) never hand a partition to a new owner in the same round the old
//! owner gives it up.
//!
//! With one shared subscription this is Java's "constrained" algorithm from
//! `AbstractStickyAssignor` (same quotas, same orders, so the same result).
//! With differing subscriptions Java runs a long general algorithm; here a
//! simpler one keeps owned partitions, gives each free partition to the least
//! loaded eligible member, then moves partitions from the most to the least
//! loaded eligible member until no move helps. It meets the same guarantees
//! (each partition once, only to subscribers, sticky where balance allows) but
//! may pick different partitions than a Java leader would.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Group, Member, TopicPartition};
use crate::group::consumer_protocol::{NO_GENERATION, Subscription};

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
fn generation(subscription: &Subscription) -> i32 {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::group::assign::tests::{check_common, counts, flat, group_strategy, member, subscribed_partitions};
    use crate::group::assign::{Assignor, MemberSubscription};
    use crate::group::consumer_protocol::TopicPartitions;

    fn owning(mut m: MemberSubscription, generation: i32, owned: &[(&str, &[i32])]) -> MemberSubscription {
        m.subscription.generation_id = generation;
        m.subscription.owned_partitions = owned
            .iter()
            .map(|(topic, ps)| TopicPartitions { topic: (*topic).into(), partitions: ps.to_vec() })
            .collect();
        m
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
        assert_eq!(generation(&sub), 7);
        sub.generation_id = 9;
        assert_eq!(generation(&sub), 9);
        sub.generation_id = NO_GENERATION;
        sub.user_data = Some(Bytes::from_static(&[1]));
        assert_eq!(generation(&sub), NO_GENERATION);
    }

    proptest! {
        #[test]
        fn cooperative_sticky_never_double_assigns((members, counts) in group_strategy(false)) {
            check_common(Assignor::CooperativeSticky, &members, &counts)?;
            // Without owned partitions nothing is held back.
            let fresh: Vec<_> = members.iter().cloned().map(|mut m| { m.subscription.owned_partitions.clear(); m }).collect();
            let given = check_common(Assignor::CooperativeSticky, &fresh, &counts)?;
            prop_assert_eq!(given.len(), subscribed_partitions(&members, &counts));
        }
    }
}
