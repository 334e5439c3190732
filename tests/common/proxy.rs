//! A recording TCP proxy for one Kafka broker: tests point a client at it and
//! afterwards read what the client really sent (API, version, header, and for
//! Produce and Fetch the whole decoded request), and in which order requests and
//! responses crossed the proxy ([`RecordingProxy::timeline`]).
//!
//! Kafka clients connect to the bootstrap address only to learn the brokers'
//! advertised addresses, then go there directly, which would bypass the proxy.
//! So the proxy rewrites every broker address in Metadata and FindCoordinator
//! responses to its own. That is right for a single broker only: with several,
//! all of them would be folded onto one upstream (one listener per broker would
//! be needed), so [`RecordingProxy::start`] takes exactly one upstream address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, FindCoordinatorResponse, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Frames larger than this are not Kafka traffic a test produces; refuse them
/// rather than allocate.
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// One request as the client sent it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Which proxied connection it came on (0, 1, ... in accept order).
    pub connection: usize,
    pub api_key: i16,
    pub api_version: i16,
    /// The decoded request header (correlation id, `client_id`), if it decoded.
    pub header: Option<RequestHeader>,
    /// For Produce: the decoded request body.
    pub produce: Option<ProduceRequest>,
    /// For Fetch: the decoded request body.
    pub fetch: Option<FetchRequest>,
    /// Why the header or the Produce/Fetch body did not decode, if it did not.
    pub decode_error: Option<String>,
}

impl RecordedRequest {
    pub fn key(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }

    pub fn client_id(&self) -> Option<String> {
        self.header.as_ref().and_then(|h| h.client_id.as_ref()).map(|c| c.to_string())
    }
}

/// One response as the broker sent it, matched to its request by correlation id.
#[derive(Debug, Clone)]
pub struct RecordedResponse {
    pub connection: usize,
    pub correlation_id: i32,
    pub api_key: i16,
    pub api_version: i16,
    /// For Produce: the decoded response body (per-partition error codes, offsets).
    pub produce: Option<ProduceResponse>,
    /// For Fetch: what the response said (not its records).
    pub fetch: Option<FetchSummary>,
    pub decode_error: Option<String>,
}

/// The top of one Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSummary {
    /// The top-level error (e.g. a fetch-session error), 0 when none.
    pub error_code: i16,
    /// The fetch session the broker keeps for the client (KIP-227), 0 when none.
    pub session_id: i32,
    /// How many partitions the response carries.
    pub partitions: usize,
    /// Partitions whose error code is not 0, as (topic name or `id:<uuid>`, partition, error code).
    pub partition_errors: Vec<(String, i32, i16)>,
}

/// Which way a frame crossed the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to broker.
    Request,
    /// Broker to client.
    Response,
}

/// One frame in the order the proxy saw it, over all connections: a request is
/// logged before it is forwarded, a response before it is passed on, so a request
/// the client sent after reading a response always comes after that response.
#[derive(Debug, Clone)]
pub struct WireEvent {
    pub connection: usize,
    pub direction: Direction,
    pub api_key: i16,
    /// -1 when the frame was too short to hold one.
    pub correlation_id: i32,
    pub at: Instant,
}

/// The partitions one Fetch request asks for, as (topic name or `id:<uuid>`, partition).
pub fn fetch_partitions(req: &FetchRequest) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for t in &req.topics {
        let topic = if t.topic.0.is_empty() { format!("id:{}", t.topic_id) } else { t.topic.0.to_string() };
        for p in &t.partitions {
            out.push((topic.clone(), p.partition));
        }
    }
    out
}

/// Records one partition of a Produce request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecords {
    /// The topic name, or `id:<uuid>` when the request addresses topics by id (v13+).
    pub topic: String,
    pub partition: i32,
    pub records: usize,
}

/// Topics, partitions and record counts of one Produce request; panics if its
/// record batches do not decode (the client sent garbage).
pub fn produce_partitions(req: &ProduceRequest) -> Vec<PartitionRecords> {
    let mut out = Vec::new();
    for t in &req.topic_data {
        let topic = if t.name.0.is_empty() { format!("id:{}", t.topic_id) } else { t.name.0.to_string() };
        for p in &t.partition_data {
            let records = match &p.records {
                None => 0,
                Some(bytes) => RecordBatchDecoder::decode_all(&mut bytes.clone())
                    .unwrap_or_else(|e| panic!("record batches of {topic}[{}] do not decode: {e}", p.index))
                    .iter()
                    .map(|set| set.records.len())
                    .sum(),
            };
            out.push(PartitionRecords { topic: topic.clone(), partition: p.index, records });
        }
    }
    out
}

#[derive(Default)]
struct Log {
    requests: Vec<RecordedRequest>,
    responses: Vec<RecordedResponse>,
    /// Things the proxy could not do (a response it failed to rewrite, a broken frame).
    errors: Vec<String>,
    /// Requests and responses in the order they crossed the proxy.
    timeline: Vec<WireEvent>,
    connections: usize,
}

/// A proxy listening on `127.0.0.1:<free port>` in front of one broker. It runs
/// on its own runtime, so synchronous tests can run the `cafe` binary against it;
/// dropping it stops it.
pub struct RecordingProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RecordingProxy {
    /// Starts a proxy forwarding to `upstream` (`host:port` of a single broker).
    pub fn start(upstream: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime for the proxy");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy on loopback");
        std_listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = std_listener.local_addr().expect("proxy address");
        let log = Arc::new(Mutex::new(Log::default()));
        {
            let _guard = runtime.enter();
            let listener = TcpListener::from_std(std_listener).expect("tokio listener");
            runtime.spawn(accept_loop(listener, upstream.to_owned(), addr, Arc::clone(&log)));
        }
        Self { addr, log, runtime: Some(runtime) }
    }

    /// `127.0.0.1:<port>`, for `--bootstrap-server`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request seen so far, in arrival order per connection.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).requests.clone()
    }

    /// The Produce requests seen so far.
    pub fn produce_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.key() == Some(ApiKey::Produce)).collect()
    }

    /// The Fetch requests seen so far.
    pub fn fetch_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.key() == Some(ApiKey::Fetch)).collect()
    }

    /// Every request and response so far, in the order they crossed the proxy.
    pub fn timeline(&self) -> Vec<WireEvent> {
        lock(&self.log).timeline.clone()
    }

    /// Every response seen so far (Produce with acks=0 has none).
    pub fn responses(&self) -> Vec<RecordedResponse> {
        lock(&self.log).responses.clone()
    }

    /// The request `resp` answers.
    pub fn request_of(&self, resp: &RecordedResponse) -> Option<RecordedRequest> {
        lock(&self.log)
            .requests
            .iter()
            .find(|r| {
                r.connection == resp.connection
                    && r.header.as_ref().is_some_and(|h| h.correlation_id == resp.correlation_id)
            })
            .cloned()
    }

    /// How many client connections the proxy accepted.
    pub fn connections(&self) -> usize {
        lock(&self.log).connections
    }

    /// What the proxy failed to do; a test that relies on it should assert this is empty.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.log).errors.clone()
    }

    /// Waits until `done(requests)` holds, up to `limit`, and returns the requests.
    /// For traffic that has no answer to wait for (acks=0): the client may exit
    /// before the proxy has read everything it wrote.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[RecordedRequest]) -> bool) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + limit;
        loop {
            let reqs = self.requests();
            if done(&reqs) || Instant::now() >= deadline {
                return reqs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Also safe when dropped inside an async test.
            rt.shutdown_background();
        }
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    // A panic in a proxy task must not hide what was recorded before it.
    log.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: TcpListener, upstream: String, me: SocketAddr, log: Arc<Mutex<Log>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let id = {
            let mut l = lock(&log);
            l.connections += 1;
            l.connections - 1
        };
        let upstream = upstream.clone();
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            match TcpStream::connect(&upstream).await {
                Ok(server) => relay(id, client, server, me, log).await,
                // Dropping `client` closes it: the client sees what it would see
                // if the broker were down.
                Err(e) => lock(&log).errors.push(format!("connection {id}: upstream {upstream}: {e}")),
            }
        });
    }
}

/// The API key and version of requests awaiting a response, by correlation id.
type Awaited = Arc<Mutex<HashMap<i32, (ApiKey, i16)>>>;

async fn relay(id: usize, client: TcpStream, server: TcpStream, me: SocketAddr, log: Arc<Mutex<Log>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let awaited: Awaited = Arc::default();
    let up = requests_upstream(id, client_r, server_w, Arc::clone(&awaited), Arc::clone(&log));
    let down = responses_downstream(id, server_r, client_w, awaited, me, Arc::clone(&log));
    tokio::join!(up, down);
}

async fn read_frame(r: &mut OwnedReadHalf) -> std::io::Result<Option<Bytes>> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(prefix);
    if len < 0 || len as usize > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(Bytes::from(buf)))
}

async fn write_frame(w: &mut OwnedWriteHalf, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(&(frame.len() as i32).to_be_bytes()).await?;
    w.write_all(frame).await
}

async fn requests_upstream(
    id: usize,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    awaited: Awaited,
    log: Arc<Mutex<Log>>,
) {
    loop {
        let frame = match read_frame(&mut from).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                lock(&log).errors.push(format!("connection {id}: reading a request: {e}"));
                break;
            }
        };
        let recorded = record(id, &frame);
        // Produce with acks=0 gets no response: nothing to wait for.
        let answered = recorded.produce.as_ref().is_none_or(|p| p.acks != 0);
        if let (Some(key), Some(h), true) = (recorded.key(), &recorded.header, answered) {
            awaited.lock().unwrap_or_else(|p| p.into_inner()).insert(h.correlation_id, (key, recorded.api_version));
        }
        {
            let mut l = lock(&log);
            l.timeline.push(WireEvent {
                connection: id,
                direction: Direction::Request,
                api_key: recorded.api_key,
                correlation_id: recorded.header.as_ref().map_or(-1, |h| h.correlation_id),
                at: Instant::now(),
            });
            l.requests.push(recorded);
        }
        if let Err(e) = write_frame(&mut to, &frame).await {
            lock(&log).errors.push(format!("connection {id}: forwarding a request: {e}"));
            break;
        }
    }
    // Pass the client's close on, so the broker side ends too.
    let _ = to.shutdown().await;
}

fn record(connection: usize, frame: &Bytes) -> RecordedRequest {
    let (api_key, api_version) = match frame.get(..4) {
        Some(b) => (i16::from_be_bytes([b[0], b[1]]), i16::from_be_bytes([b[2], b[3]])),
        None => (-1, -1),
    };
    let mut r = RecordedRequest {
        connection,
        api_key,
        api_version,
        header: None,
        produce: None,
        fetch: None,
        decode_error: None,
    };
    let Some(key) = r.key() else {
        r.decode_error = Some(format!("unknown API key {api_key}"));
        return r;
    };
    let mut buf = frame.clone();
    match RequestHeader::decode(&mut buf, key.request_header_version(api_version)) {
        Ok(h) => r.header = Some(h),
        Err(e) => {
            r.decode_error = Some(format!("request header: {e}"));
            return r;
        }
    }
    if key == ApiKey::Produce {
        match ProduceRequest::decode(&mut buf, api_version) {
            Ok(p) => r.produce = Some(p),
            Err(e) => r.decode_error = Some(format!("Produce v{api_version} body: {e}")),
        }
    }
    if key == ApiKey::Fetch {
        match FetchRequest::decode(&mut buf, api_version) {
            Ok(f) => r.fetch = Some(f),
            Err(e) => r.decode_error = Some(format!("Fetch v{api_version} body: {e}")),
        }
    }
    r
}

async fn responses_downstream(
    id: usize,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    awaited: Awaited,
    me: SocketAddr,
    log: Arc<Mutex<Log>>,
) {
    loop {
        let frame = match read_frame(&mut from).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                lock(&log).errors.push(format!("connection {id}: reading a response: {e}"));
                break;
            }
        };
        let correlation_id = frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let pending = correlation_id.and_then(|c| awaited.lock().unwrap_or_else(|p| p.into_inner()).remove(&c));
        if let (Some(correlation_id), Some((key, version))) = (correlation_id, pending) {
            let recorded = record_response(id, correlation_id, key, version, &frame);
            let mut l = lock(&log);
            l.timeline.push(WireEvent {
                connection: id,
                direction: Direction::Response,
                api_key: key as i16,
                correlation_id,
                at: Instant::now(),
            });
            l.responses.push(recorded);
        }
        let out = match pending {
            Some((key @ (ApiKey::Metadata | ApiKey::FindCoordinator), version)) => {
                match point_brokers_at(me, key, version, frame.clone()) {
                    Ok(rewritten) => rewritten,
                    Err(e) => {
                        // Forward it unchanged; the test sees the error (and the bypass).
                        lock(&log).errors.push(format!("connection {id}: rewriting {key:?} v{version}: {e}"));
                        frame
                    }
                }
            }
            _ => frame,
        };
        if let Err(e) = write_frame(&mut to, &out).await {
            lock(&log).errors.push(format!("connection {id}: forwarding a response: {e}"));
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn record_response(
    connection: usize,
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    frame: &Bytes,
) -> RecordedResponse {
    let mut r = RecordedResponse {
        connection,
        correlation_id,
        api_key: key as i16,
        api_version: version,
        produce: None,
        fetch: None,
        decode_error: None,
    };
    if key == ApiKey::Fetch {
        let mut buf = frame.clone();
        let decoded = ResponseHeader::decode(&mut buf, key.response_header_version(version))
            .and_then(|_| FetchResponse::decode(&mut buf, version));
        match decoded {
            Ok(f) => {
                let mut partitions = 0;
                let mut partition_errors = Vec::new();
                for t in &f.responses {
                    let topic = if t.topic.0.is_empty() { format!("id:{}", t.topic_id) } else { t.topic.0.to_string() };
                    for p in &t.partitions {
                        partitions += 1;
                        if p.error_code != 0 {
                            partition_errors.push((topic.clone(), p.partition_index, p.error_code));
                        }
                    }
                }
                r.fetch = Some(FetchSummary {
                    error_code: f.error_code,
                    session_id: f.session_id,
                    partitions,
                    partition_errors,
                });
            }
            Err(e) => r.decode_error = Some(format!("Fetch v{version} response: {e}")),
        }
    }
    if key == ApiKey::Produce {
        let mut buf = frame.clone();
        let decoded = ResponseHeader::decode(&mut buf, key.response_header_version(version))
            .and_then(|_| ProduceResponse::decode(&mut buf, version));
        match decoded {
            Ok(p) => r.produce = Some(p),
            Err(e) => r.decode_error = Some(format!("Produce v{version} response: {e}")),
        }
    }
    r
}

/// Re-encodes a Metadata or FindCoordinator response with every broker address
/// replaced by the proxy's own.
fn point_brokers_at(me: SocketAddr, key: ApiKey, version: i16, mut frame: Bytes) -> anyhow::Result<Bytes> {
    let header_version = key.response_header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)?;
    let host = StrBytes::from_string(me.ip().to_string());
    let port = i32::from(me.port());
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version)?;
    match key {
        ApiKey::Metadata => {
            let mut resp = MetadataResponse::decode(&mut frame, version)?;
            for b in &mut resp.brokers {
                b.host = host.clone();
                b.port = port;
            }
            resp.encode(&mut out, version)?;
        }
        ApiKey::FindCoordinator => {
            let mut resp = FindCoordinatorResponse::decode(&mut frame, version)?;
            // v0-3 answer one coordinator at the top level, v4+ a list (KIP-699);
            // the top-level fields do not exist in v4+ (setting them fails the encode).
            if version < 4 && resp.node_id.0 >= 0 {
                resp.host = host.clone();
                resp.port = port;
            }
            for c in &mut resp.coordinators {
                if c.node_id.0 >= 0 {
                    c.host = host.clone();
                    c.port = port;
                }
            }
            resp.encode(&mut out, version)?;
        }
        other => anyhow::bail!("no rewrite for {other:?}"),
    }
    Ok(out.freeze())
}
