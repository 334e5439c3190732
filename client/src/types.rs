//! Types every layer shares.

/// A topic-partition: the topic's name and the partition's index.
// A tuple for now because the group code (and its tests) spell it so throughout;
// one named struct is planned with the library split.
pub type Tp = (String, i32);
