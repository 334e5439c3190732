//! Kafka framing, pure: a request is `int32 size | header | body`; a response is
//! `int32 size | header | body` whose header starts with the correlation id.
//! No I/O here, so the decoding path can be fuzzed and unit-tested on bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Error;
use super::api::ApiRequest;

/// Largest response frame accepted. A fetch response is bounded by the fetch sizes we
/// ask for; anything far larger means the peer is not Kafka (or is broken), and
/// allocating it would let a stray port exhaust memory.
pub const MAX_RESPONSE_FRAME: usize = 256 * 1024 * 1024;

/// Encodes one request, size prefix included.
pub fn encode_request<R: ApiRequest>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<BytesMut, Error> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = R::KEY.request_header_version(version);
    let mut buf = BytesMut::new();
    buf.put_i32(0); // patched below once the size is known
    header.encode(&mut buf, header_version).and_then(|_| req.encode(&mut buf, version)).map_err(|e| Error::Encode {
        api: R::KEY,
        version,
        reason: e.to_string(),
    })?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| Error::Encode {
        api: R::KEY,
        version,
        reason: "request larger than 2 GiB".into(),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Reads the size prefix of a response frame and checks it is sane.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, Error> {
    let len = i32::from_be_bytes(prefix);
    if len < 4 {
        return Err(Error::Malformed(format!("response frame of {len} bytes")));
    }
    let len = len as usize;
    if len > MAX_RESPONSE_FRAME {
        return Err(Error::Malformed(format!(
            "response frame of {len} bytes exceeds {MAX_RESPONSE_FRAME}; is this port really Kafka?"
        )));
    }
    Ok(len)
}

/// The correlation id at the start of a response frame (every header version starts with it).
pub fn peek_correlation_id(frame: &[u8]) -> Result<i32, Error> {
    let mut b = frame;
    if b.len() < 4 {
        return Err(Error::Malformed("response shorter than its correlation id".into()));
    }
    Ok(b.get_i32())
}

/// Decodes a response frame (without the size prefix) for request type `R` at `version`.
pub fn decode_response<R: ApiRequest>(mut frame: Bytes, version: i16) -> Result<R::Response, Error> {
    let header_version = R::KEY.response_header_version(version);
    let malformed = |e: anyhow::Error| Error::Decode { api: R::KEY, version, reason: e.to_string() };
    ResponseHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = R::Response::decode(&mut frame, version).map_err(malformed)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    #[test]
    fn request_size_prefix_counts_header_and_body() {
        let buf = encode_request(&MetadataRequest::default(), 12, 7, "host-a").unwrap();
        let size = i32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(size, buf.len() - 4);
        // api key 3, version 12, correlation id 7
        assert_eq!(&buf[4..12], &[0, 3, 0, 12, 0, 0, 0, 7]);
    }

    #[test]
    fn frame_len_rejects_nonsense() {
        assert!(frame_len((-1i32).to_be_bytes()).is_err());
        assert!(frame_len(3i32.to_be_bytes()).is_err());
        // "HTTP" read as a size: what an HTTP server on the port answers with
        assert!(frame_len(*b"HTTP").is_err());
        assert_eq!(frame_len(100i32.to_be_bytes()).unwrap(), 100);
    }

    #[test]
    fn truncated_response_is_an_error_not_a_panic() {
        let frame = Bytes::from_static(&[0, 0, 0, 1, 0, 0]);
        assert!(decode_response::<MetadataRequest>(frame, 12).is_err());
        assert!(peek_correlation_id(&[1, 2]).is_err());
    }

    #[test]
    fn decodes_what_was_encoded() {
        let resp = MetadataResponse::default().with_throttle_time_ms(5);
        let mut buf = BytesMut::new();
        ResponseHeader::default().with_correlation_id(9).encode(&mut buf, 1).unwrap();
        resp.encode(&mut buf, 12).unwrap();
        let frame = buf.freeze();
        assert_eq!(peek_correlation_id(&frame).unwrap(), 9);
        let back = decode_response::<MetadataRequest>(frame, 12).unwrap();
        assert_eq!(back.throttle_time_ms, 5);
    }
}
