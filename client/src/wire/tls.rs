//! TLS for broker connections: rustls with graviola's crypto, which builds with
//! rustc alone (no C, no assembler tool), so `cargo tree -i cc` stays empty.
//! graviola runs on x86_64 and aarch64 CPUs with AES and carry-less multiply
//! (x86_64 since about 2013); elsewhere [`TlsSetup::new`] returns
//! [`Error::TlsConfig`] instead of letting graviola abort the process.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Error;
use crate::config::SslConfig;

/// Why a TLS handshake failed, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate chain does not lead to a trusted CA
    /// (`ssl.ca.location` or the system's roots).
    Untrusted,
    /// The certificate is valid but does not name the host dialled
    /// (`ssl.endpoint.identification.algorithm=https`).
    WrongHost,
    /// The certificate has expired or is not yet valid.
    Expired,
    /// The broker sent a TLS alert: it refused our certificate, or asked
    /// for one we did not send (a listener with `ssl.client.auth=required`).
    Refused,
    /// The peer did not answer as a TLS server: a plaintext port, most often.
    NotTls,
    /// Anything else rustls refused.
    Other,
}

/// The TLS side of a client's connections, built once per client from its
/// `ssl.*` settings (files read, keys parsed) and shared by every connection.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

impl TlsSetup {
    /// Reads the CA, certificate and key files of `ssl`; fails with
    /// [`Error::TlsConfig`] when one is unreadable or malformed, or when this
    /// CPU cannot run the crypto provider.
    pub(crate) fn new(ssl: &SslConfig) -> Result<Self, Error> {
        let provider = Arc::new(provider()?);
        let roots = Arc::new(roots(ssl)?);
        let bad = |reason: String| Error::TlsConfig { reason };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("no TLS version available: {e}")))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| bad(format!("cannot verify with these CA certificates: {e}")))?;
        let builder = if ssl.endpoint_identification {
            builder.with_webpki_verifier(verifier)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyHostName(verifier)))
        };
        if ssl.key_password.is_some() {
            return Err(bad("`ssl.key.password` is set, but encrypted private keys are not supported; \
                 decrypt the key (openssl pkey -in enc.pem -out key.pem) and leave it unset"
                .into()));
        }
        let config = match (&ssl.certificate_location, &ssl.key_location) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| bad(format!("cannot read `ssl.certificate.location` {}: {e}", cert.display())))?;
                if chain.is_empty() {
                    return Err(bad(format!("`ssl.certificate.location` {} holds no certificate", cert.display())));
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| bad(format!("cannot read `ssl.key.location` {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(format!("the client certificate and key do not fit together: {e}")))?
            }
            _ => {
                return Err(bad(
                    "`ssl.certificate.location` and `ssl.key.location` go together; set both or neither".into()
                ));
            }
        };
        Ok(Self { connector: TlsConnector::from(Arc::new(config)) })
    }

    /// The TLS handshake over `tcp` with the broker at `addr` (`host:port`; the
    /// host is what the certificate must name).
    pub(crate) async fn handshake(&self, tcp: TcpStream, addr: &str) -> Result<TlsStream<TcpStream>, Error> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| Error::TlsConfig { reason: format!("`{host}` is not a host name TLS can check: {e}") })?;
        self.connector.connect(name, tcp).await.map_err(|source| Error::Tls {
            addr: addr.to_owned(),
            failure: classify(&source),
            source,
        })
    }
}

/// graviola's provider, after checking the CPU features it asserts on (its
/// assertion would abort the program; a user gets an error instead).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn provider() -> Result<rustls::crypto::CryptoProvider, Error> {
    let missing = missing_cpu_features();
    if !missing.is_empty() {
        return Err(Error::TlsConfig {
            reason: format!(
                "TLS needs CPU features this machine lacks ({}); cafe's TLS provider, graviola, \
                 runs on x86_64 CPUs from about 2013 on and on ARMv8 CPUs with the crypto extension",
                missing.join(", ")
            ),
        });
    }
    Ok(rustls_graviola::default_provider())
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn provider() -> Result<rustls::crypto::CryptoProvider, Error> {
    Err(Error::TlsConfig { reason: "TLS is only built for x86_64 and aarch64 CPUs (graviola's targets)".into() })
}

/// The features graviola 0.3 requires (its `verify_cpu_features`) that this CPU lacks.
#[cfg(target_arch = "x86_64")]
fn missing_cpu_features() -> Vec<&'static str> {
    let have = [
        ("aes", std::arch::is_x86_feature_detected!("aes")),
        ("pclmulqdq", std::arch::is_x86_feature_detected!("pclmulqdq")),
        ("bmi1", std::arch::is_x86_feature_detected!("bmi1")),
        ("bmi2", std::arch::is_x86_feature_detected!("bmi2")),
        ("adx", std::arch::is_x86_feature_detected!("adx")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
    ];
    have.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect()
}

#[cfg(target_arch = "aarch64")]
fn missing_cpu_features() -> Vec<&'static str> {
    let have = [
        ("neon", std::arch::is_aarch64_feature_detected!("neon")),
        ("aes", std::arch::is_aarch64_feature_detected!("aes")),
        ("pmull", std::arch::is_aarch64_feature_detected!("pmull")),
        ("sha2", std::arch::is_aarch64_feature_detected!("sha2")),
    ];
    have.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect()
}

/// The CAs to trust: `ssl.ca.location` alone when given (as Java's truststore
/// replaces the default), else the system's, else the bundled Mozilla roots
/// (a static binary in a bare container has no system store).
fn roots(ssl: &SslConfig) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = &ssl.ca_location {
        let bad =
            |e: String| Error::TlsConfig { reason: format!("cannot read `ssl.ca.location` {}: {e}", path.display()) };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
            roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        return Ok(roots);
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::debug!("no system CA certificates found; trusting the bundled Mozilla roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(roots)
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain must still
/// lead to a trusted CA, but the certificate need not name the host.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a failed handshake's error means for the user.
fn classify(e: &std::io::Error) -> TlsFailure {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        // The peer closed or reset the connection mid-handshake: a Kafka
        // plaintext listener reads the ClientHello as an oversized request.
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => TlsFailure::NotTls,
            _ => TlsFailure::Other,
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongHost
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::Untrusted,
        },
        rustls::Error::AlertReceived(_) => TlsFailure::Refused,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => TlsFailure::NotTls,
        _ => TlsFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_cpu_runs_the_provider_or_says_why_not() {
        match provider() {
            Ok(_) => assert!(missing_cpu_features().is_empty()),
            Err(e) => assert!(e.to_string().contains("CPU features"), "{e}"),
        }
    }

    #[test]
    fn file_errors_name_the_setting_and_file() {
        let ssl = SslConfig { ca_location: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let e = TlsSetup::new(&ssl).unwrap_err();
        assert!(e.to_string().contains("`ssl.ca.location` /nonexistent/ca.pem"), "{e}");
        let ssl = SslConfig { certificate_location: Some("/x".into()), ..Default::default() };
        assert!(TlsSetup::new(&ssl).unwrap_err().to_string().contains("go together"));
        let ssl = SslConfig { key_password: Some(crate::config::Secret::new("pw")), ..Default::default() };
        let e = TlsSetup::new(&ssl).unwrap_err().to_string();
        assert!(e.contains("encrypted private keys are not supported") && !e.contains("pw\""), "{e}");
    }

    #[test]
    fn system_or_bundled_roots_are_never_empty() {
        assert!(!roots(&SslConfig::default()).unwrap().is_empty());
    }
}
