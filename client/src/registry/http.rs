//! A minimal HTTP/1.1 client for the registry's REST API: plain `http://` on a
//! tokio `TcpStream`, one request per connection (`Connection: close`), small
//! JSON bodies. A run makes a handful of calls (ids are cached), so this is all
//! it needs, and it keeps TLS stacks and their C compilers out of the build.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Registry responses are small JSON documents; refuse anything absurd.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// `http://host[:port][/prefix]`: where the registry's API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    host: String,
    port: u16,
    /// Path prefix without a trailing slash (`""` or e.g. `/apis/ccompat/v7`).
    prefix: String,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]` (the scheme may be left out; port 80
    /// by default, IPv6 hosts in brackets). Refuses `https`, other schemes,
    /// credentials, a missing host and a bad port, saying which.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(format!(
                    "`{url}`: the schema registry client speaks plain http (no TLS); use an http:// URL"
                ));
            }
            Some((scheme, _)) => return Err(format!("`{url}`: unsupported scheme `{scheme}`; use http://host:port")),
            None => url,
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(format!("`{url}`: credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| format!("`{url}`: unclosed `[` in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host; use http://host:port"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| format!("`{url}`: `{p}` is not a port"))?,
            None => 80,
        };
        Ok(Self { host: host.to_owned(), port, prefix: path.trim_end_matches('/').to_owned() })
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.prefix)
    }
}

/// The HTTP methods the registry calls need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`, with a JSON body.
    Post,
}

/// Status and body of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code of the status line.
    pub status: u16,
    /// The body, de-chunked when the server used chunked transfer encoding.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The whole exchange took longer than the time-out given.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Writing the request or reading the response failed.
    #[error("connection failed: {0}")]
    Io(std::io::Error),
    /// The answer is not a parseable HTTP/1.x response, or exceeds 16 MiB.
    #[error("not an HTTP response: {0}")]
    Malformed(String),
}

/// Sends one request with an optional JSON body and reads the whole response.
pub async fn request(
    base: &BaseUrl,
    method: Method,
    path: &str,
    json_body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let exchange = async {
        let mut stream = TcpStream::connect((base.host.as_str(), base.port)).await.map_err(HttpError::Connect)?;
        let head = request_head(base, method, path, json_body.map(<[u8]>::len));
        stream.write_all(head.as_bytes()).await.map_err(HttpError::Io)?;
        if let Some(body) = json_body {
            stream.write_all(body).await.map_err(HttpError::Io)?;
        }
        let mut raw = Vec::new();
        // `Connection: close`: the server ends the response by closing.
        (&mut stream).take(MAX_RESPONSE as u64 + 1).read_to_end(&mut raw).await.map_err(HttpError::Io)?;
        if raw.len() > MAX_RESPONSE {
            return Err(HttpError::Malformed(format!("response larger than {MAX_RESPONSE} bytes")));
        }
        parse_response(&raw).map_err(HttpError::Malformed)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| HttpError::Timeout(timeout))?
}

fn request_head(base: &BaseUrl, method: Method, path: &str, body_len: Option<usize>) -> String {
    let method = match method {
        Method::Get => "GET",
        Method::Post => "POST",
    };
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.schemaregistry.v1+json, application/json\r\n\
         User-Agent: cafe/{}\r\nConnection: close\r\n",
        base.prefix,
        base.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(len) = body_len {
        head.push_str(&format!("Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Parses a complete HTTP/1.1 response: status line, headers, and a body
/// delimited by `Content-Length`, chunked encoding, or the end of the stream.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = code.parse().map_err(|_| format!("status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| format!("Content-Length {value:?}"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = content_length {
        rest.get(..len).ok_or_else(|| format!("body has {} of {len} bytes", rest.len()))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or("unterminated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "chunk size is not text")?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("chunk shorter than its size")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunk without its CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let u = BaseUrl::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.prefix.as_str()), ("127.0.0.1", 8081, ""));
        let u = BaseUrl::parse("http://reg.local/apis/ccompat/v7/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.prefix.as_str()), ("reg.local", 80, "/apis/ccompat/v7"));
        assert_eq!(u.to_string(), "http://reg.local:80/apis/ccompat/v7");
        let u = BaseUrl::parse("localhost:8081").unwrap();
        assert_eq!(u.port, 8081);
        let u = BaseUrl::parse("http://[::1]:8081").unwrap();
        assert_eq!(u.to_string(), "http://[::1]:8081");
        assert!(BaseUrl::parse("https://x:8081").unwrap_err().contains("no TLS"));
        assert!(BaseUrl::parse("http://x:port").is_err());
        assert!(BaseUrl::parse("http://:8081").is_err());
        assert!(BaseUrl::parse("http://u:p@x:8081").is_err());
    }

    #[test]
    fn request_head_carries_prefix_host_and_length() {
        let u = BaseUrl::parse("http://h:1/p").unwrap();
        let head = request_head(&u, Method::Post, "/subjects/demo-value/versions", Some(12));
        assert!(head.starts_with("POST /p/subjects/demo-value/versions HTTP/1.1\r\nHost: h:1\r\n"), "{head}");
        assert!(head.contains("Content-Length: 12\r\n") && head.ends_with("\r\n\r\n"));
        assert!(!request_head(&u, Method::Get, "/x", None).contains("Content-Length"));
    }

    #[test]
    fn parses_content_length_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"id\":1}trailing").unwrap();
        assert_eq!(r, Response { status: 200, body: b"{\"id\":1}".to_vec() });
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
    }

    #[test]
    fn parses_chunked_and_close_delimited_bodies() {
        let raw =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), Response { status: 404, body: b"{\"a\":1}".to_vec() });
        let r = parse_response(b"HTTP/1.0 409 Conflict\r\n\r\nbody").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, b"body".as_slice()));
    }

    #[test]
    fn rejects_what_is_not_http() {
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
