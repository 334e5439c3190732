//! Choosing a partition for a record from its key: Kafka's Java murmur2
//! (`BuiltInPartitioner`) or librdkafka's crc32 (`consistent_random`), so
//! that this client places keys where those clients would. Pure, no I/O.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, reading
/// the data as little-endian 4-byte words. Java does its arithmetic on
/// wrapping `int`s and shifts with `>>>`; wrapping `u32` with `>>` is the
/// same bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    // Mixing constants from the reference MurmurHash2.
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java mixes in `data.length` as an int; keys never reach 4 GiB.
    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    h = mix_tail(h, words.remainder(), M);
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    // Reinterpret the bits as Java's signed int, the documented return value.
    h as i32
}

/// The last 1–3 bytes, as Java's fall-through `switch (length % 4)` does.
fn mix_tail(mut h: u32, tail: &[u8], m: u32) -> u32 {
    match *tail {
        [a, b, c] => h ^= (u32::from(c) << 16) | (u32::from(b) << 8) | u32::from(a),
        [a, b] => h ^= (u32::from(b) << 8) | u32::from(a),
        [a] => h ^= u32::from(a),
        _ => return h,
    }
    h.wrapping_mul(m)
}

/// Kafka's `Utils.toPositive`: clears the sign bit. Not `abs`, which would
/// map `i32::MIN` to itself and place keys differently from Java.
pub fn to_positive(h: i32) -> i32 {
    h & 0x7fff_ffff
}

/// librdkafka's `rd_crc32`: CRC-32 as zlib computes it (IEEE polynomial,
/// reflected, init and final xor `0xffffffff`).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Which client's key hashing to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// The Java client's default: `toPositive(murmur2(key)) % n`.
    #[default]
    Murmur2,
    /// librdkafka's default `consistent_random`: `crc32(key) % n`, null and
    /// empty keys spread out.
    Crc32,
}

impl Partitioner {
    /// Every partitioner, for help text and tests.
    pub const ALL: [Partitioner; 2] = [Partitioner::Murmur2, Partitioner::Crc32];

    /// The name accepted by `FromStr` and printed by `Display`.
    pub fn name(self) -> &'static str {
        match self {
            Partitioner::Murmur2 => "murmur2",
            Partitioner::Crc32 => "crc32",
        }
    }

    /// The partition in `0..num_partitions` for a record with this key.
    /// Records without a key (and, for crc32, with an empty key) go to
    /// `null_keys`, which spreads them evenly.
    ///
    /// A topic always has at least one partition; a `num_partitions` below 1
    /// is treated as 1 rather than dividing by zero.
    ///
    /// Keys land where the Java client puts them: its `UtilsTest` gives
    /// `murmur2("foobar") == -790332482`, and `toPositive` of that modulo 3 is 0.
    ///
    /// ```
    /// use cafe_kafka::Partitioner;
    /// use cafe_kafka::partitioner::{NullKeyPicker, murmur2};
    ///
    /// assert_eq!(murmur2(b"foobar"), -790_332_482);
    /// let mut null_keys = NullKeyPicker::new(Some(7));
    /// assert_eq!(Partitioner::Murmur2.partition(Some(b"foobar"), 3, &mut null_keys), 0);
    ///
    /// // Records without a key take turns.
    /// let first = Partitioner::Murmur2.partition(None, 3, &mut null_keys);
    /// let second = Partitioner::Murmur2.partition(None, 3, &mut null_keys);
    /// assert_eq!(second, (first + 1) % 3);
    /// ```
    pub fn partition(&self, key: Option<&[u8]>, num_partitions: i32, null_keys: &mut NullKeyPicker) -> i32 {
        self.partition_sized(key, num_partitions, 1, null_keys)
    }

    /// [`partition`](Self::partition) for a record of `size` bytes, which a
    /// [sticky](NullKeyPicker::sticky) `null_keys` counts.
    pub fn partition_sized(
        &self,
        key: Option<&[u8]>,
        num_partitions: i32,
        size: usize,
        null_keys: &mut NullKeyPicker,
    ) -> i32 {
        let n = num_partitions.max(1);
        match (self, key) {
            // Java hashes any non-null key, the empty one included.
            (Partitioner::Murmur2, Some(key)) => to_positive(murmur2(key)) % n,
            // rdkafka_msg.c: `consistent_random` hashes only when
            // `keylen != 0`, then `rd_crc32(key) % partition_cnt` in unsigned
            // arithmetic (uint32 % int32 converts the count to unsigned).
            (Partitioner::Crc32, Some(key)) if !key.is_empty() => crc32_partition(key, n),
            _ => null_keys.next_partition_sized(n, size),
        }
    }
}

fn crc32_partition(key: &[u8], n: i32) -> i32 {
    // `n` is at least 1 and the remainder is below `n`, so both casts are exact.
    (crc32(key) % n as u32) as i32
}

impl fmt::Display for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A partitioner name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown partitioner `{0}`; expected one of: murmur2, crc32")]
pub struct UnknownPartitioner(pub String);

impl FromStr for Partitioner {
    type Err = UnknownPartitioner;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Partitioner::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownPartitioner(s.to_owned()))
    }
}

/// Spreads records without a key over the partitions, from a seeded starting
/// point: round-robin per record ([`new`](Self::new)), or sticky
/// ([`sticky`](Self::sticky)): every record to one partition while they fit in a
/// batch, then on to the next, as the Java client does (KIP-480, KIP-794's byte
/// count, switching when the batch is full; without its load-adaptive choice of
/// the next partition).
///
/// The producer is sticky: at a moderate rate round-robin spreads records over
/// every partition's batch, so none fills and each waits out `linger.ms`, where a
/// sticky batch fills and goes. Round-robin gives every partition the same share
/// within one record. The random start keeps many producers from all beginning at
/// partition 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullKeyPicker {
    // u64 so the counter never wraps in practice; wrapping at 2^32 would
    // skew the rotation whenever the partition count does not divide it.
    next: u64,
    /// The bytes of records a sticky picker sends to one partition; 0 for round-robin.
    stick_bytes: usize,
    /// The sticky partition and the bytes sent to it.
    current: Option<(i32, usize)>,
}

impl NullKeyPicker {
    /// Round-robin per record. `Some(seed)` gives the same sequence on every run;
    /// `None` starts at a random partition.
    pub fn new(seed: Option<u64>) -> Self {
        let next = match seed {
            Some(seed) => StdRng::seed_from_u64(seed).random(),
            None => rand::random(),
        };
        NullKeyPicker { next, stick_bytes: 0, current: None }
    }

    /// Sticky: records go to one partition while their sizes add up to at most
    /// `stick_bytes` (the producer's `batch.size` less the batch header), so the
    /// record that would not fit in that partition's batch, which seals it, is the
    /// first of the next partition's. Counting on past `batch.size` instead left a
    /// batch of a record or two after each full one, waiting out `linger.ms`:
    /// 214 of 657 batches at 50k records/s of 100 B, p50 latency 2.5 ms against
    /// franz-go's 1.5.
    pub fn sticky(seed: Option<u64>, stick_bytes: usize) -> Self {
        NullKeyPicker { stick_bytes, ..Self::new(seed) }
    }

    /// The partition for the next null-keyed record. `num_partitions` below 1
    /// is treated as 1.
    pub fn next_partition(&mut self, num_partitions: i32) -> i32 {
        self.next_partition_sized(num_partitions, 1)
    }

    /// The partition for the next null-keyed record, of `size` bytes.
    pub fn next_partition_sized(&mut self, num_partitions: i32, size: usize) -> i32 {
        let n = num_partitions.max(1);
        if self.stick_bytes > 0 {
            if let Some((p, sent)) = &mut self.current {
                if *p < n && *sent + size <= self.stick_bytes {
                    *sent += size;
                    return *p;
                }
            }
        }
        let partition = (self.next % u64::from(n.unsigned_abs())) as i32; // below n, an i32
        self.next = self.next.wrapping_add(1);
        if self.stick_bytes > 0 {
            self.current = Some((partition, size));
        }
        partition
    }
}

impl Default for NullKeyPicker {
    fn default() -> Self {
        NullKeyPicker::new(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `UtilsTest.testMurmur2` in apache/kafka.
    const JAVA_MURMUR2: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        (b"abc", 479_470_107),
    ];

    #[test]
    fn murmur2_matches_kafka_utils_test() {
        for (data, expected) in JAVA_MURMUR2 {
            assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn murmur2_covers_every_tail_length() {
        // Lengths 0..=3 take each arm of the tail switch; `abc` is above.
        let hashes: Vec<i32> = ["", "a", "ab", "abc", "abcd"].iter().map(|s| murmur2(s.as_bytes())).collect();
        assert_eq!(hashes[0], 275_646_681);
        assert_eq!(hashes[3], 479_470_107);
        let mut distinct = hashes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), hashes.len());
    }

    #[test]
    fn to_positive_clears_only_the_sign_bit() {
        assert_eq!(to_positive(-790_332_482), 1_357_151_166);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(42), 42);
    }

    #[test]
    fn murmur2_partitions_like_java() {
        let mut nulls = NullKeyPicker::new(Some(0));
        let p = |key: &[u8], n, nulls: &mut NullKeyPicker| Partitioner::Murmur2.partition(Some(key), n, nulls);
        assert_eq!(p(b"foobar", 3, &mut nulls), 0);
        assert_eq!(p(b"foobar", 50, &mut nulls), 16);
        assert_eq!(to_positive(murmur2(b"foobar")) % 3, 0);
        // Java hashes the empty key instead of treating it as null.
        assert_eq!(p(b"", 7, &mut nulls), 275_646_681 % 7);
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"foobar"), 0x9ef6_1f95);
        assert_eq!(crc32(b"21"), 0xfd77_46b4);
        assert_eq!(crc32(b"abc"), 0x3524_41c2);
    }

    #[test]
    fn crc32_partitions_like_librdkafka() {
        let mut nulls = NullKeyPicker::new(Some(0));
        let p = |key: &[u8], n, nulls: &mut NullKeyPicker| Partitioner::Crc32.partition(Some(key), n, nulls);
        // Unsigned modulo: 0x9ef61f95 = 2666930069 has the top bit set.
        assert_eq!(p(b"foobar", 3, &mut nulls), (2_666_930_069u32 % 3) as i32);
        assert_eq!(p(b"foobar", 7, &mut nulls), (2_666_930_069u32 % 7) as i32);
        assert_eq!(p(b"abc", 10, &mut nulls), 8);
    }

    #[test]
    fn null_keys_spread_evenly_and_empty_crc32_keys_count_as_null() {
        for partitioner in Partitioner::ALL {
            let mut nulls = NullKeyPicker::new(Some(11));
            let mut counts = [0u32; 7];
            for _ in 0..700 {
                let p = partitioner.partition(None, 7, &mut nulls);
                counts[p as usize] += 1;
            }
            assert_eq!(counts, [100; 7], "{partitioner}");
        }
        let mut nulls = NullKeyPicker::new(Some(3));
        let first = Partitioner::Crc32.partition(Some(b""), 5, &mut nulls);
        let second = Partitioner::Crc32.partition(Some(b""), 5, &mut nulls);
        assert_eq!((first + 1) % 5, second);
    }

    #[test]
    fn a_sticky_picker_moves_on_after_a_batch_of_bytes() {
        let mut nulls = NullKeyPicker::sticky(Some(4), 1000);
        let first = nulls.next_partition_sized(3, 400);
        assert_eq!(nulls.next_partition_sized(3, 400), first, "800 bytes sent there: still within 1000");
        assert_eq!(nulls.next_partition_sized(3, 200), first, "1000 bytes: still within");
        let second = nulls.next_partition_sized(3, 1);
        assert_eq!(second, (first + 1) % 3, "1001 bytes would not fit: the next partition");
        assert_eq!(nulls.next_partition_sized(3, 10), second);
        // A record larger than the whole allowance goes alone.
        let third = nulls.next_partition_sized(3, 5000);
        assert_eq!(third, (second + 1) % 3);
        assert_eq!(nulls.next_partition_sized(3, 1), (third + 1) % 3);
        // Fewer partitions than the sticky one's number (another topic): move on.
        let mut nulls = NullKeyPicker::sticky(Some(4), 1000);
        while nulls.next_partition_sized(100, 1) < 2 {}
        assert!((0..2).contains(&nulls.next_partition_sized(2, 1)));
    }

    #[test]
    fn seeded_null_key_pickers_repeat() {
        let run = |seed| {
            let mut nulls = NullKeyPicker::new(Some(seed));
            (0..10).map(|_| nulls.next_partition(13)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for p in Partitioner::ALL {
            assert_eq!(p.to_string().parse::<Partitioner>(), Ok(p));
        }
        assert_eq!("CRC32".parse::<Partitioner>(), Ok(Partitioner::Crc32));
        let err = "fnv1a".parse::<Partitioner>();
        assert_eq!(err, Err(UnknownPartitioner("fnv1a".to_owned())));
        let message = UnknownPartitioner("fnv1a".to_owned()).to_string();
        assert_eq!(message, "unknown partitioner `fnv1a`; expected one of: murmur2, crc32");
        assert_eq!(Partitioner::default(), Partitioner::Murmur2);
    }

    #[test]
    fn non_positive_partition_counts_give_partition_zero() {
        let mut nulls = NullKeyPicker::new(Some(1));
        for p in Partitioner::ALL {
            assert_eq!(p.partition(Some(b"k"), 0, &mut nulls), 0);
            assert_eq!(p.partition(None, -4, &mut nulls), 0);
        }
    }

    fn arb_partitioner() -> impl Strategy<Value = Partitioner> {
        prop_oneof![Just(Partitioner::Murmur2), Just(Partitioner::Crc32)]
    }

    proptest! {
        #[test]
        fn partition_is_in_range(
            partitioner in arb_partitioner(),
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            n in 1i32..1000,
            seed in any::<u64>(),
        ) {
            let mut nulls = NullKeyPicker::new(Some(seed));
            let p = partitioner.partition(key.as_deref(), n, &mut nulls);
            prop_assert!((0..n).contains(&p));
        }

        #[test]
        fn same_key_same_partition(
            partitioner in arb_partitioner(),
            key in proptest::collection::vec(any::<u8>(), 1..64),
            n in 1i32..1000,
        ) {
            // Different pickers: a keyed record must not depend on them.
            let mut a = NullKeyPicker::new(Some(1));
            let mut b = NullKeyPicker::new(Some(2));
            prop_assert_eq!(
                partitioner.partition(Some(&key), n, &mut a),
                partitioner.partition(Some(&key), n, &mut b)
            );
        }
    }
}
