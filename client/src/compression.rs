//! The four record-batch codecs Kafka knows, both directions, in pure Rust (no C
//! compiler anywhere: `cargo tree -e normal,build -i cc` stays empty).
//!
//! Each one writes what the Java client's reader accepts and reads what the Java
//! client and librdkafka write:
//! - gzip: a gzip stream (flate2 on miniz_oxide); several members are read in turn.
//! - snappy: Java writes xerial's framing (magic header, then length-prefixed snappy
//!   blocks); librdkafka reads and writes the same and also accepts a bare snappy
//!   block, so we read both and write xerial.
//! - lz4: the LZ4 frame format. Kafka's Java reader (`KafkaLZ4BlockInputStream`)
//!   supports only independent blocks and no content size, so that is what we
//!   write: 64 KiB independent blocks, no block checksum.
//! - zstd: a zstd frame (ruzstd; its encoder offers about zstd level 1); several
//!   frames are read in turn.

use std::io::{Read, Write};

/// `compression.type`: how a producer compresses its record batches (default
/// `none`), and what a fetched batch's attributes say it was written with.
///
/// Parses from Kafka's names and round-trips through [`compress`] and
/// [`decompress`]:
///
/// ```
/// use cafe_kafka::Codec;
/// use cafe_kafka::compression::{compress, decompress};
///
/// let codec: Codec = "lz4".parse()?;
/// let data = b"espresso ".repeat(100);
/// let packed = compress(codec, &data)?;
/// assert!(packed.len() < data.len());
/// assert_eq!(decompress(codec, &packed)?, data);
/// assert!("brotli".parse::<Codec>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// Uncompressed (`none`, attribute 0).
    #[default]
    None,
    /// `gzip` (attribute 1).
    Gzip,
    /// `snappy` in xerial framing, as the Java client writes it (attribute 2).
    Snappy,
    /// `lz4`, the LZ4 frame format with independent blocks (attribute 3).
    Lz4,
    /// `zstd` (attribute 4; brokers accept it from Kafka 2.1, Produce v7).
    Zstd,
}

impl Codec {
    /// The codec of a v2 batch's attribute bits 0-2, if Kafka defines it.
    pub fn from_attributes(attributes: i16) -> Option<Codec> {
        match attributes & 0x07 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Kafka's name, as in `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    #[cfg(test)]
    pub(crate) fn to_records(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as C;
        match self {
            Codec::None => C::None,
            Codec::Gzip => C::Gzip,
            Codec::Snappy => C::Snappy,
            Codec::Lz4 => C::Lz4,
            Codec::Zstd => C::Zstd,
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Codec::None),
            "gzip" => Ok(Codec::Gzip),
            "snappy" => Ok(Codec::Snappy),
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd),
            other => Err(format!("compression must be none, gzip, snappy, lz4 or zstd, not `{other}`")),
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decompressed data larger than this is refused: a batch is at most
/// `message.max.bytes` compressed (1 MiB by default), and no real one expands
/// past a few hundred MiB; a small corrupt or hostile batch must not exhaust memory.
pub const MAX_DECOMPRESSED: usize = 512 * 1024 * 1024;

/// Why a payload could not be decompressed.
#[derive(Debug, thiserror::Error)]
#[error("{codec} data could not be decompressed: {reason}")]
pub struct CodecError {
    /// The codec that failed.
    pub codec: Codec,
    /// The underlying library's message, or which limit was exceeded.
    pub reason: String,
}

fn err(codec: Codec, reason: impl std::fmt::Display) -> CodecError {
    CodecError { codec, reason: reason.to_string() }
}

/// xerial snappy-java's stream header: magic, then version 1 and compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Compresses `data` with `codec`, in the format the Java client reads
/// ([`Codec::None`] copies it). Fails only if the encoder's writer does.
pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let mut enc =
                flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2), flate2::Compression::default());
            enc.write_all(data).map_err(|e| err(codec, e))?;
            enc.finish().map_err(|e| err(codec, e))
        }
        Codec::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = enc.compress_vec(chunk).map_err(|e| err(codec, e))?;
                let len = i32::try_from(block.len()).map_err(|_| err(codec, "block too large"))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Codec::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2));
            enc.write_all(data).map_err(|e| err(codec, e))?;
            enc.finish().map_err(|e| err(codec, e))
        }
        Codec::Zstd => Ok(ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)),
    }
}

/// Decompresses `data` written with `codec`, refusing output beyond [`MAX_DECOMPRESSED`].
///
/// Fails with [`CodecError`] when the data is not valid for the codec (corrupt or
/// truncated) or would decompress to more than [`MAX_DECOMPRESSED`] bytes.
pub fn decompress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), data.len()),
        Codec::Snappy => decompress_snappy(data),
        Codec::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), data.len()),
        Codec::Zstd => {
            let mut input = data;
            let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(MAX_DECOMPRESSED));
            // One frame per pass; producers write one, but the format allows several.
            while !input.is_empty() {
                let dec = ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(|e| err(codec, e))?;
                let limit = (MAX_DECOMPRESSED - out.len()) as u64 + 1;
                dec.take(limit).read_to_end(&mut out).map_err(|e| err(codec, e))?;
                if out.len() > MAX_DECOMPRESSED {
                    return Err(too_large(codec));
                }
            }
            Ok(out)
        }
    }
}

fn too_large(codec: Codec) -> CodecError {
    err(codec, format!("decompressed size exceeds {MAX_DECOMPRESSED} bytes"))
}

fn read_bounded(codec: Codec, reader: impl Read, input_len: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(MAX_DECOMPRESSED));
    reader.take(MAX_DECOMPRESSED as u64 + 1).read_to_end(&mut out).map_err(|e| err(codec, e))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(too_large(codec));
    }
    Ok(out)
}

fn decompress_snappy(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let codec = Codec::Snappy;
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), CodecError> {
        let len = snap::raw::decompress_len(block).map_err(|e| err(codec, e))?;
        if out.len() + len > MAX_DECOMPRESSED {
            return Err(too_large(codec));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| err(codec, e))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data.get(XERIAL_HEADER_LEN..).ok_or_else(|| err(codec, "truncated xerial header"))?;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(4).ok_or_else(|| err(codec, "truncated xerial block length"))?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let len = usize::try_from(len).map_err(|_| err(codec, format!("negative xerial block length {len}")))?;
        let (block, tail) = tail.split_at_checked(len).ok_or_else(|| err(codec, "truncated xerial block"))?;
        raw(block, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"cafe latte flat white "[i % 22] ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn every_codec_round_trips_small_large_and_empty() {
        for codec in ALL {
            for n in [0, 1, 100, 70_000, 300_000] {
                let data = sample(n);
                let packed = compress(codec, &data).unwrap();
                assert_eq!(decompress(codec, &packed).unwrap(), data, "{codec} with {n} bytes");
            }
        }
    }

    #[test]
    fn snappy_is_xerial_framed_and_bare_blocks_are_read_too() {
        let data = sample(100_000);
        let packed = compress(Codec::Snappy, &data).unwrap();
        assert_eq!(&packed[..8], XERIAL_MAGIC);
        assert_eq!(&packed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let bare = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Codec::Snappy, &bare).unwrap(), data);
    }

    #[test]
    fn lz4_frame_has_independent_64k_blocks_and_no_checksums() {
        let packed = compress(Codec::Lz4, &sample(1000)).unwrap();
        assert_eq!(&packed[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        let flg = packed[4];
        assert_eq!(flg >> 6, 0b01, "version 01");
        assert_ne!(flg & 0x20, 0, "block independence");
        assert_eq!(flg & 0x10, 0, "no block checksum");
        assert_eq!(flg & 0x08, 0, "no content size");
        assert_eq!(flg & 0x04, 0, "no content checksum");
        assert_eq!((packed[5] >> 4) & 0x07, 4, "64 KiB blocks");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            assert!(decompress(codec, b"\x82SNAPPY\x00\0\0\0\x01\0\0\0\x01\x7f\xff\xff\xff").is_err(), "{codec}");
            assert!(decompress(codec, &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).is_err(), "{codec}");
        }
    }

    #[test]
    fn gzip_reads_several_members() {
        let mut two = compress(Codec::Gzip, b"ab").unwrap();
        two.extend(compress(Codec::Gzip, b"cd").unwrap());
        assert_eq!(decompress(Codec::Gzip, &two).unwrap(), b"abcd");
    }

    #[test]
    fn names_parse_back() {
        for codec in ALL {
            assert_eq!(codec.name().parse::<Codec>().unwrap(), codec);
        }
        assert!("brotli".parse::<Codec>().is_err());
    }
}
