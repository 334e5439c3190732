//! Partition assignors the group leader runs: `range`, `roundrobin` and
//! `cooperative-sticky`, as pure functions from member subscriptions and
//! partition counts to one `Assignment` per member. Here: the [`Assignor`]
//! names and protocol choices, and the canonical view of the group all three
//! share; each assignor has its own file (`range`, `roundrobin`, `sticky`).
//!
//! They follow Kafka's Java assignors (`RangeAssignor`, `RoundRobinAssignor`,
//! `CooperativeStickyAssignor`) without rack awareness, so a mixed Java/cafe-kafka
//! group gets the same assignment whichever member leads. Every map is a
//! `BTreeMap` and ties are broken by member id, so the result never depends
//! on the order members are listed in.

mod range;
mod roundrobin;
mod sticky;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::consumer_protocol::{Assignment, Subscription};

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
            Assignor::Range => range::range(&group),
            Assignor::RoundRobin => roundrobin::round_robin(&group),
            Assignor::CooperativeSticky => sticky::cooperative(&group),
        };
        group.into_assignments(per_member)
    }
}

/// How members give partitions up in a rebalance (KIP-429's `RebalanceProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Revoke every partition before rejoining; the new assignment starts from nothing.
    Eager,
    /// Keep every partition through the rebalance and give up only those missing
    /// from the new assignment, then rejoin so they can be handed on.
    Cooperative,
}

impl RebalanceProtocol {
    /// The protocol of a member offering `assignors` (Java's `ConsumerCoordinator`):
    /// the most advanced protocol every one of them supports. `range` and
    /// `roundrobin` support only eager, `cooperative-sticky` both, so the list
    /// `[range, cooperative-sticky]` is eager until `range` is removed. The
    /// coordinator may still pick `cooperative-sticky` for such a member; it then
    /// runs the cooperative assignor while rebalancing eagerly, which is safe.
    pub fn of(assignors: &[Assignor]) -> Self {
        if !assignors.is_empty() && assignors.iter().all(|a| a.is_cooperative()) {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicPartition;
    use crate::group::consumer_protocol::TopicPartitions;
    use proptest::prelude::*;

    pub(super) fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription::new(topics.iter().copied()),
        }
    }

    pub(super) fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| ((*t).to_string(), *n)).collect()
    }

    /// The result as `member -> [(topic, partition)]`, for compact assertions.
    pub(super) fn flat(result: &BTreeMap<String, Assignment>) -> BTreeMap<&str, Vec<(&str, i32)>> {
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
    fn the_rebalance_protocol_is_the_one_every_assignor_supports() {
        use Assignor::*;
        assert_eq!(RebalanceProtocol::of(&[CooperativeSticky]), RebalanceProtocol::Cooperative);
        // Java's default list: eager until range is removed.
        assert_eq!(RebalanceProtocol::of(&[Range, CooperativeSticky]), RebalanceProtocol::Eager);
        assert_eq!(RebalanceProtocol::of(&[CooperativeSticky, Range]), RebalanceProtocol::Eager);
        assert_eq!(RebalanceProtocol::of(&[Range]), RebalanceProtocol::Eager);
        assert_eq!(RebalanceProtocol::of(&[RoundRobin]), RebalanceProtocol::Eager);
        assert_eq!(RebalanceProtocol::of(&[]), RebalanceProtocol::Eager);
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

    const TOPICS: [&str; 3] = ["t0", "t1", "t2"];

    /// Members over up to three topics; `shared` gives all the same subscription.
    pub(super) fn group_strategy(
        shared: bool,
    ) -> impl Strategy<Value = (Vec<MemberSubscription>, BTreeMap<String, i32>)> {
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
    pub(super) fn check_common(
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

    pub(super) fn subscribed_partitions(members: &[MemberSubscription], counts: &BTreeMap<String, i32>) -> usize {
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

    }
}
