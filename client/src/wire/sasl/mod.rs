//! SASL on a broker connection: SaslHandshake v1 names the mechanism, then
//! SaslAuthenticate (v2 where the broker has it) carries the mechanism's
//! messages until it is done. The mechanisms (`plain`, `scram`, `oauthbearer`)
//! only build and check bytes; this module sends them.
//!
//! KIP-368: when the broker answers with a session lifetime, the connection
//! counts as closed shortly before it ends, so the pools open a fresh,
//! freshly authenticated one instead of letting the broker cut it off.

mod oauthbearer;
mod plain;
mod scram;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use super::{Connection, Error};
use crate::config::{SaslConfig, SaslMechanism, Secret};

/// The credentials of one client, checked once before any connection.
#[derive(Debug, Clone)]
pub(crate) struct SaslSetup {
    mechanism: SaslMechanism,
    credentials: Credentials,
}

#[derive(Clone)]
enum Credentials {
    Password {
        username: String,
        password: Secret,
    },
    Token(Secret),
    /// An unsecured JWT is built for each connection (its `iat`/`exp` are
    /// taken then), from these JAAS options.
    Unsecured(crate::config::JaasConfig),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { username, .. } => write!(f, "Password {{ username: {username:?} }}"),
            Credentials::Token(_) => f.write_str("Token"),
            Credentials::Unsecured(_) => f.write_str("UnsecuredJwt"),
        }
    }
}

impl SaslSetup {
    /// The mechanism and its credentials, or [`Error::SaslConfig`] saying what is missing.
    pub(crate) fn new(sasl: &SaslConfig) -> Result<Self, Error> {
        let missing =
            |what: &str| Error::SaslConfig { reason: format!("`sasl.mechanism` {} needs {what}", sasl.mechanism) };
        let credentials = match sasl.mechanism {
            SaslMechanism::Gssapi => {
                return Err(Error::SaslConfig {
                    reason: "`sasl.mechanism` is GSSAPI (Kerberos, Kafka's default), which cafe-kafka does not \
                             support; set it to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
                        .into(),
                });
            }
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let username = sasl.effective_username().ok_or_else(|| {
                    missing("a user name (`sasl.username`, or username=\"...\" in `sasl.jaas.config`)")
                })?;
                let password = sasl.effective_password().ok_or_else(|| {
                    missing("a password (`sasl.password`, or password=\"...\" in `sasl.jaas.config`)")
                })?;
                Credentials::Password { username: username.to_owned(), password: Secret::new(password) }
            }
            SaslMechanism::OAuthBearer => match (&sasl.oauthbearer_token, &sasl.jaas_config) {
                (Some(token), _) => Credentials::Token(token.clone()),
                (None, Some(jaas)) if oauthbearer::unsecured_jwt(jaas, 0).is_some() => {
                    Credentials::Unsecured(jaas.clone())
                }
                _ => {
                    return Err(missing(
                        "a token (`sasl.oauthbearer.token`) or, for an unsecured test JWT, \
                         unsecuredLoginStringClaim_sub=\"...\" in `sasl.jaas.config`",
                    ));
                }
            },
        };
        Ok(Self { mechanism: sasl.mechanism, credentials })
    }

    /// The user name this client authenticates as (for messages naming the principal).
    pub(crate) fn username(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::Password { username, .. } => Some(username),
            _ => None,
        }
    }

    /// Authenticates `conn`; returns the session lifetime the broker set (KIP-368), if any.
    pub(crate) async fn authenticate(&self, conn: &Connection) -> Result<Option<Duration>, Error> {
        let addr = conn.addr().to_owned();
        let mechanism = self.mechanism.name();
        // v1: the mechanism's messages then travel in SaslAuthenticate, not raw frames.
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let resp = conn.request_at(&req, 1).await?;
        match resp.error_code {
            0 => {}
            33 => {
                let enabled = resp.mechanisms.iter().map(|m| m.to_string()).collect();
                return Err(Error::SaslMechanism { addr, mechanism, enabled });
            }
            // A PLAINTEXT or SSL listener answers ILLEGAL_SASL_STATE.
            34 => {
                let reason = "the listener does not take SASL (ILLEGAL_SASL_STATE); is this a PLAINTEXT or SSL port?";
                return Err(Error::Sasl { addr, reason: reason.into() });
            }
            code => return Err(Error::Sasl { addr, reason: format!("SaslHandshake failed with error code {code}") }),
        }
        let mut exchange = Exchange::start(self);
        let mut outgoing = exchange.first();
        loop {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(outgoing));
            let resp = conn.request(&req).await?;
            if resp.error_code != 0 {
                // 58 SASL_AUTHENTICATION_FAILED (wrong password, bad token), or
                // 34 ILLEGAL_SASL_STATE; the broker's message says which.
                let message = resp.error_message.map(|m| m.to_string()).unwrap_or_default();
                return Err(Error::SaslAuthentication { addr, mechanism, code: resp.error_code, message });
            }
            match exchange.step(&resp.auth_bytes).map_err(|reason| Error::Sasl { addr: addr.clone(), reason })? {
                Some(next) => outgoing = next,
                None => {
                    tracing::debug!(%addr, mechanism, "SASL authenticated");
                    let lifetime = u64::try_from(resp.session_lifetime_ms).ok().filter(|ms| *ms > 0);
                    return Ok(lifetime.map(Duration::from_millis));
                }
            }
        }
    }
}

/// One mechanism's exchange on one connection: what to send first, and what to
/// answer each server message with (`None` when it is done).
enum Exchange {
    /// PLAIN: one message; the broker's empty answer ends it.
    Once(Vec<u8>),
    Scram {
        scram: scram::Scram,
        sent_final: bool,
    },
    /// OAUTHBEARER: one message; a non-empty answer is an error challenge.
    Bearer(Vec<u8>),
}

impl Exchange {
    fn start(setup: &SaslSetup) -> Self {
        match (&setup.credentials, setup.mechanism) {
            (Credentials::Password { username, password }, SaslMechanism::Plain) => {
                Exchange::Once(plain::message(username, password.expose()))
            }
            (Credentials::Password { username, password }, m) => {
                let hash = if m == SaslMechanism::ScramSha512 { scram::Hash::Sha512 } else { scram::Hash::Sha256 };
                let scram = scram::Scram::new(hash, username, password.expose(), &scram::nonce());
                Exchange::Scram { scram, sent_final: false }
            }
            (Credentials::Token(token), _) => Exchange::Bearer(oauthbearer::initial_response(token.expose(), &[])),
            (Credentials::Unsecured(jaas), _) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let (jwt, extensions) = oauthbearer::unsecured_jwt(jaas, now).unwrap_or_default();
                Exchange::Bearer(oauthbearer::initial_response(&jwt, &extensions))
            }
        }
    }

    fn first(&mut self) -> Vec<u8> {
        match self {
            Exchange::Once(m) | Exchange::Bearer(m) => std::mem::take(m),
            Exchange::Scram { scram, .. } => scram.client_first(),
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            Exchange::Once(_) => Ok(None),
            Exchange::Bearer(_) if challenge.is_empty() => Ok(None),
            // The broker's error JSON comes back as the next response's message.
            Exchange::Bearer(_) => Ok(Some(oauthbearer::ERROR_ACK.to_vec())),
            Exchange::Scram { scram, sent_final } if !*sent_final => {
                let out = scram.client_final(challenge).map_err(|e| e.to_string())?;
                *sent_final = true;
                Ok(Some(out))
            }
            Exchange::Scram { scram, .. } => {
                scram.verify_server_final(challenge).map_err(|e| e.to_string())?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JaasConfig;

    fn sasl(mechanism: SaslMechanism) -> SaslConfig {
        SaslConfig { mechanism, ..Default::default() }
    }

    #[test]
    fn missing_credentials_are_named_before_connecting() {
        let e = SaslSetup::new(&sasl(SaslMechanism::Gssapi)).unwrap_err().to_string();
        assert!(e.contains("GSSAPI") && e.contains("PLAIN, SCRAM-SHA-256"), "{e}");
        let e = SaslSetup::new(&sasl(SaslMechanism::Plain)).unwrap_err().to_string();
        assert!(e.contains("needs a user name"), "{e}");
        let c = SaslConfig { username: Some("u".into()), ..sasl(SaslMechanism::ScramSha512) };
        assert!(SaslSetup::new(&c).unwrap_err().to_string().contains("needs a password"));
        let e = SaslSetup::new(&sasl(SaslMechanism::OAuthBearer)).unwrap_err().to_string();
        assert!(e.contains("sasl.oauthbearer.token"), "{e}");
    }

    #[test]
    fn jaas_credentials_are_used_and_never_shown() {
        let jaas = JaasConfig::parse(r#"x.PlainLoginModule required username="key" password="s3cr3t";"#).unwrap();
        let c = SaslConfig { jaas_config: Some(jaas), ..sasl(SaslMechanism::Plain) };
        let setup = SaslSetup::new(&c).unwrap();
        assert_eq!(setup.username(), Some("key"));
        assert!(!format!("{setup:?}").contains("s3cr3t"));
        let mut exchange = Exchange::start(&setup);
        assert_eq!(exchange.first(), b"\0key\0s3cr3t");
        assert_eq!(exchange.step(b""), Ok(None));
    }

    #[test]
    fn bearer_error_challenge_is_acknowledged() {
        let c = SaslConfig { oauthbearer_token: Some(Secret::new("t")), ..sasl(SaslMechanism::OAuthBearer) };
        let setup = SaslSetup::new(&c).unwrap();
        let mut exchange = Exchange::start(&setup);
        assert_eq!(exchange.first(), b"n,,\x01auth=Bearer t\x01\x01");
        assert_eq!(exchange.step(br#"{"status":"invalid_token"}"#), Ok(Some(b"\x01".to_vec())));
    }
}
