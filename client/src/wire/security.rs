//! What securing a connection takes, prepared once per client from its
//! [`SecurityConfig`]: the TLS connector (files read, keys parsed) and the
//! SASL credentials (checked), so a bad file or a missing password is an
//! error before the first socket opens, and no connection re-reads a file.

use super::Error;
use super::sasl::SaslSetup;
use super::tls::TlsSetup;
use crate::config::SecurityConfig;

/// TLS and SASL as `security.protocol` asks, ready for every connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    pub(crate) tls: Option<TlsSetup>,
    pub(crate) sasl: Option<SaslSetup>,
}

impl Security {
    /// Reads and checks what `config`'s protocol uses (nothing for PLAINTEXT).
    pub(crate) fn new(config: &SecurityConfig) -> Result<Self, Error> {
        let tls = if config.protocol.uses_tls() { Some(TlsSetup::new(&config.ssl)?) } else { None };
        let sasl = if config.protocol.uses_sasl() { Some(SaslSetup::new(&config.sasl)?) } else { None };
        Ok(Self { tls, sasl })
    }
}
