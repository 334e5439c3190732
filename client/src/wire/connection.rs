//! An open connection to one broker. Requests are pipelined: many may be in flight,
//! each waits for the response carrying its correlation id, which a reader task
//! routes back. The first request on every connection is ApiVersions, so each
//! later request goes out at the newest version both sides speak. With
//! `security.protocol` set, TLS wraps the socket before that and SASL runs
//! right after it, so nothing else is sent before the connection is authenticated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::api::{ApiRequest, BrokerVersions, our_versions};
use super::security::Security;
use super::{Error, frame};
use crate::config::SecurityConfig;

/// The socket's halves, plain TCP or TLS over it.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Settings of one connection; `client.id` travels in every request header.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// `client.id`: names this client in broker logs and quotas. Default `cafe`.
    pub client_id: String,
    /// `socket.connection.setup.timeout.ms`: how long a TCP connect may take.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// `request.timeout.ms`: how long a request waits for its response before
    /// failing with [`Error::Timeout`]. Default 30 s.
    pub request_timeout: Duration,
    /// `security.protocol` and the `ssl.*` and `sasl.*` settings. Default PLAINTEXT.
    pub security: SecurityConfig,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            client_id: "cafe".into(),
            connect_timeout: Duration::from_secs(10),
            // Java's request.timeout.ms
            request_timeout: Duration::from_secs(30),
            security: SecurityConfig::default(),
        }
    }
}

type Waiter = oneshot::Sender<Result<Bytes, Error>>;

/// Requests waiting for their response, and why the connection died if it did.
#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, Waiter>,
    closed: Option<String>,
}

/// One broker connection; cheap to share behind an `Arc`.
pub struct Connection {
    addr: String,
    config: ConnectionConfig,
    versions: BrokerVersions,
    next_correlation_id: AtomicI32,
    writer: tokio::sync::Mutex<WriteHalf>,
    pending: Arc<Mutex<Pending>>,
    reader: tokio::task::JoinHandle<()>,
    /// KIP-368: when the broker ends this connection's SASL session; the
    /// connection reads as closed a little before, so pools replace it.
    session_ends: Option<Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Connects, then learns the broker's API versions (and authenticates,
    /// when `config.security` asks for SASL).
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Self, Error> {
        let security = Security::new(&config.security)?;
        Self::open(addr, config, &security).await
    }

    /// [`connect`](Self::connect) with the TLS and SASL setup prepared once
    /// for the whole client.
    pub(crate) async fn open(addr: &str, config: ConnectionConfig, security: &Security) -> Result<Self, Error> {
        let (read, write) = tokio::time::timeout(config.connect_timeout, dial(addr, security))
            .await
            .map_err(|_| Error::ConnectTimeout { addr: addr.into(), after_ms: ms(config.connect_timeout) })??;
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_responses(read, Arc::clone(&pending), addr.to_owned()));
        let mut conn = Connection {
            addr: addr.to_owned(),
            config,
            versions: BrokerVersions::default(),
            next_correlation_id: AtomicI32::new(1),
            writer: tokio::sync::Mutex::new(write),
            pending,
            reader,
            session_ends: None,
        };
        conn.versions = match conn.negotiate().await {
            Ok(v) => v,
            Err(e) if security.tls.is_some() => return Err(conn.tls_alert().unwrap_or(e)),
            Err(e) => return Err(e),
        };
        if let Some(sasl) = &security.sasl {
            let started = Instant::now();
            if let Some(lifetime) = sasl.authenticate(&conn).await? {
                // Java re-authenticates at 85-95% of the lifetime; replacing the
                // connection at 85% leaves room for the requests still on it.
                conn.session_ends = Some(started + lifetime.mul_f64(0.85));
                tracing::debug!(addr, lifetime_ms = lifetime.as_millis() as u64, "SASL session lifetime set");
            }
        }
        Ok(conn)
    }

    /// The broker's `host:port` as dialled.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `request.timeout.ms` of this connection.
    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// True once the connection has failed; callers then open a new one.
    pub fn is_closed(&self) -> bool {
        lock(&self.pending).closed.is_some()
            || self.reader.is_finished()
            || self.session_ends.is_some_and(|end| Instant::now() >= end)
    }

    /// The version `R` goes out at on this connection.
    pub fn version<R: ApiRequest>(&self) -> Result<i16, Error> {
        let ours = our_versions::<R>();
        self.versions.pick(R::KEY, ours).ok_or_else(|| Error::UnsupportedVersion {
            addr: self.addr.clone(),
            api: R::KEY,
            ours,
        })
    }

    /// Sends `req` and waits for its response.
    pub async fn request<R: ApiRequest>(&self, req: &R) -> Result<R::Response, Error> {
        let version = self.version::<R>()?;
        self.request_at(req, version).await
    }

    /// Sends `req` at an explicit version and waits for its response.
    pub async fn request_at<R: ApiRequest>(&self, req: &R, version: i16) -> Result<R::Response, Error> {
        self.request_within(req, version, self.config.request_timeout).await
    }

    /// Like [`request_at`](Self::request_at) with its own timeout: JoinGroup may
    /// legitimately wait for the whole rebalance timeout.
    pub async fn request_within<R: ApiRequest>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        self.send_request(req, version).await?.response_within(self, timeout).await
    }

    /// Writes `req` and returns once it is on the socket, without waiting for the
    /// response: requests written one after another reach the broker in that order
    /// (which idempotent produce with several batches of a partition in flight needs).
    pub async fn send_request<R: ApiRequest>(&self, req: &R, version: i16) -> Result<Sent<R>, Error> {
        let (correlation_id, rx) = self.register()?;
        let bytes = frame::encode_request(req, version, correlation_id, &self.config.client_id);
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                self.forget(correlation_id);
                return Err(e);
            }
        };
        if let Err(e) = self.write(&bytes).await {
            self.forget(correlation_id);
            return Err(e);
        }
        Ok(Sent { correlation_id, version, rx, request: std::marker::PhantomData })
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_only_at<R: ApiRequest>(&self, req: &R, version: i16) -> Result<(), Error> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode_request(req, version, correlation_id, &self.config.client_id)?;
        self.write(&bytes).await
    }

    async fn negotiate(&self) -> Result<BrokerVersions, Error> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("cafe"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 is what every Kafka since 2.4 answers; a broker that does not know v3
        // replies at v0 with error 35 and its ranges, which v0 decoding can read.
        // A service that is not Kafka may wait for more input instead of answering
        // (an HTTP server does): do not make the user wait the full request timeout.
        let wait = self.config.request_timeout.min(self.config.connect_timeout);
        let resp = match self.request_within(&req, 3, wait).await {
            Ok(r) => r,
            Err(Error::Decode { .. } | Error::Malformed(_)) | Err(Error::Closed { .. }) => {
                return Err(Error::NotKafka {
                    addr: self.addr.clone(),
                    reason: "its answer to ApiVersions was not a Kafka response".into(),
                });
            }
            Err(Error::Timeout { .. }) => {
                return Err(Error::NotKafka { addr: self.addr.clone(), reason: "no answer to ApiVersions".into() });
            }
            Err(e) => return Err(e),
        };
        if resp.error_code == 35 {
            let v0 = self.request_at(&ApiVersionsRequest::default(), 0).await?;
            return Ok(BrokerVersions::from_response(&v0));
        }
        if resp.error_code != 0 {
            return Err(Error::NotKafka {
                addr: self.addr.clone(),
                reason: format!("ApiVersions failed with error code {}", resp.error_code),
            });
        }
        Ok(BrokerVersions::from_response(&resp))
    }

    fn register(&self) -> Result<(i32, oneshot::Receiver<Result<Bytes, Error>>), Error> {
        let (tx, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        if let Some(reason) = &pending.closed {
            return Err(Error::Closed { addr: self.addr.clone(), reason: reason.clone() });
        }
        // Unique per connection (wrapping after 2^31 requests is harmless: the old
        // holder of the id answered long ago).
        let id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        pending.waiters.insert(id, tx);
        Ok((id, rx))
    }

    fn forget(&self, correlation_id: i32) {
        lock(&self.pending).waiters.remove(&correlation_id);
    }

    async fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut w = self.writer.lock().await;
        // TLS keeps what the socket did not take in its own buffer until a
        // flush (a no-op for plain TCP).
        let written = match w.write_all(bytes).await {
            Ok(()) => w.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let reason = e.to_string();
            fail_all(&self.pending, &self.addr, &reason);
            return Err(Error::Closed { addr: self.addr.clone(), reason });
        }
        Ok(())
    }

    /// TLS 1.3 finishes the client's side of the handshake before the server
    /// checks the client's certificate: a refusal (a listener that requires
    /// one) arrives as an alert on the first read, not from the handshake.
    fn tls_alert(&self) -> Option<Error> {
        let reason = lock(&self.pending).closed.clone()?;
        reason.contains("alert").then(|| Error::Tls {
            addr: self.addr.clone(),
            failure: super::TlsFailure::Refused,
            source: std::io::Error::other(reason),
        })
    }

    fn closed_error(&self, fallback: &str) -> Error {
        let reason = lock(&self.pending).closed.clone().unwrap_or_else(|| fallback.into());
        Error::Closed { addr: self.addr.clone(), reason }
    }
}

/// A request on the socket, its response still to come ([`Connection::send_request`]).
#[must_use = "the response is lost unless awaited"]
pub struct Sent<R: ApiRequest> {
    correlation_id: i32,
    version: i16,
    rx: oneshot::Receiver<Result<Bytes, Error>>,
    request: std::marker::PhantomData<fn() -> R>,
}

impl<R: ApiRequest> Sent<R> {
    /// Waits up to `request.timeout.ms` for the response.
    pub async fn response(self, conn: &Connection) -> Result<R::Response, Error> {
        self.response_within(conn, conn.config.request_timeout).await
    }

    /// Waits up to `timeout` for the response, from `conn` (the connection it was sent on).
    pub async fn response_within(self, conn: &Connection, timeout: Duration) -> Result<R::Response, Error> {
        let frame = match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(conn.closed_error("reader stopped")),
            Err(_) => {
                conn.forget(self.correlation_id);
                return Err(Error::Timeout { addr: conn.addr.clone(), api: R::KEY, after_ms: ms(timeout) });
            }
        };
        frame::decode_response::<R>(frame, self.version)
    }
}

/// Routes each response frame to the request with its correlation id, until the
/// socket fails; then every waiter learns why.
async fn read_responses(mut read: ReadHalf, pending: Arc<Mutex<Pending>>, addr: String) {
    let reason = loop {
        match read_frame(&mut read).await {
            Ok(bytes) => {
                let id = match frame::peek_correlation_id(&bytes) {
                    Ok(id) => id,
                    Err(e) => break e.to_string(),
                };
                // A response nobody waits for belonged to a request that timed out.
                if let Some(w) = lock(&pending).waiters.remove(&id) {
                    let _ = w.send(Ok(bytes));
                }
            }
            Err(e) => break e,
        }
    };
    fail_all(&pending, &addr, &reason);
}

async fn read_frame(read: &mut ReadHalf) -> Result<Bytes, String> {
    let mut prefix = [0u8; 4];
    read.read_exact(&mut prefix).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "closed by the broker".to_string(),
        _ => e.to_string(),
    })?;
    let len = frame::frame_len(prefix).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; len];
    read.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// TCP connect, then the TLS handshake when the client uses TLS.
async fn dial(addr: &str, security: &Security) -> Result<(ReadHalf, WriteHalf), Error> {
    let stream = TcpStream::connect(addr).await.map_err(|source| Error::Connect { addr: addr.into(), source })?;
    // Small requests (heartbeats, commits) must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    match &security.tls {
        None => {
            let (read, write) = stream.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
        Some(tls) => {
            let (read, write) = tokio::io::split(tls.handshake(stream, addr).await?);
            Ok((Box::new(read), Box::new(write)))
        }
    }
}

fn fail_all(pending: &Mutex<Pending>, addr: &str, reason: &str) {
    let mut p = lock(pending);
    p.closed.get_or_insert_with(|| reason.to_owned());
    for (_, w) in p.waiters.drain() {
        let _ = w.send(Err(Error::Closed { addr: addr.to_owned(), reason: reason.to_owned() }));
    }
}

/// The pending map is only held for map operations, never across an await, so a
/// poisoned lock can only come from a panic elsewhere; keep going with its data.
fn lock(m: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
