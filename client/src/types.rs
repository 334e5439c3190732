//! Types every layer shares.

use std::fmt;
use std::sync::Arc;

/// A topic-partition: the topic's name and the partition's index (Java's
/// `TopicPartition`). Ordered by topic, then partition; shown as `topic[partition]`.
///
/// ```
/// use cafe_kafka::TopicPartition;
///
/// let tp = TopicPartition::new("demo", 2);
/// assert_eq!(tp.to_string(), "demo[2]");
/// assert_eq!((&*tp.topic, tp.partition), ("demo", 2));
/// assert!(tp < TopicPartition::new("demo", 10) && TopicPartition::new("demo", 10) < TopicPartition::new("e", 0));
/// ```
// The topic is shared, not owned: the consumer copies a topic-partition into its
// fetch plans, offsets and commits every round, and a clone here is a reference
// count rather than a new string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: Arc<str>,
    /// The partition's index within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// As [`Display`](fmt::Display): `topic[partition]`, so logs and assertion
/// messages listing many partitions stay short.
impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_topic_then_partition_as_the_tuple_did() {
        let mut tps = vec![TopicPartition::new("b", 0), TopicPartition::new("a", 10), TopicPartition::new("a", 2)];
        tps.sort();
        assert_eq!(tps, [TopicPartition::new("a", 2), TopicPartition::new("a", 10), TopicPartition::new("b", 0)]);
        assert_eq!(format!("{:?}", tps[1]), "a[10]");
    }
}
