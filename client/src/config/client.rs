//! The settings every client role shares: where the cluster is and how to
//! connect to it (`bootstrap.servers`, `client.id`, the connection time-outs,
//! `security.protocol` with its `ssl.*` and `sasl.*` keys).

use std::sync::Arc;

use super::value::{Choice, MS_INT, MS_LONG, SERVERS, TEXT};
use super::{ENDPOINT_IDENTIFICATION, JAAS, PATH, Role, SECRET, Setting, role_config, setting};
use crate::cluster::{self, Cluster};
use crate::wire::ConnectionConfig;

/// Bootstrap servers and connection settings, shared by the producer, the
/// consumer and the admin client of one program (they share one [`Cluster`]).
///
/// ```
/// use cafe_kafka::ClientConfig;
///
/// let mut client = ClientConfig::default();
/// client.set("bootstrap.servers", "127.0.0.1:9092,127.0.0.1:9093")?;
/// client.set("request.timeout.ms", "5000")?;
/// assert_eq!(client.bootstrap_servers.len(), 2);
/// assert_eq!(client.get("client.id").as_deref(), Some("cafe"));
/// assert!(client.set("bootstrap.servers", "no-port").is_err());
/// # Ok::<(), cafe_kafka::config::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` of the brokers to learn the cluster
    /// from. No default (as in Java): [`connect`](Self::connect) refuses an empty list.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`, `request.timeout.ms`, `socket.connection.setup.timeout.ms`
    /// and the security settings.
    pub connection: ConnectionConfig,
}

/// The client's settings by Kafka name. `request.timeout.ms` is also the
/// producer's (its deliveries count it); set both from the same properties.
pub(crate) static SETTINGS: &[Setting<ClientConfig>] = &[
    setting!("bootstrap.servers" => bootstrap_servers: SERVERS),
    setting!("client.id" => connection.client_id: TEXT),
    setting!("request.timeout.ms" => connection.request_timeout: MS_INT),
    setting!("socket.connection.setup.timeout.ms" => connection.connect_timeout: MS_LONG),
    setting!("security.protocol" => connection.security.protocol:
        Choice("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")),
    setting!("ssl.ca.location" => connection.security.ssl.ca_location: PATH),
    setting!("ssl.certificate.location" => connection.security.ssl.certificate_location: PATH),
    setting!("ssl.key.location" => connection.security.ssl.key_location: PATH),
    setting!("ssl.key.password" => connection.security.ssl.key_password: SECRET),
    setting!("ssl.endpoint.identification.algorithm" =>
        connection.security.ssl.endpoint_identification: ENDPOINT_IDENTIFICATION),
    setting!("sasl.mechanism" => connection.security.sasl.mechanism:
        Choice("PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI")),
    // librdkafka's spelling (Confluent Cloud's files for it use it).
    setting!("sasl.mechanisms" => connection.security.sasl.mechanism:
        Choice("PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or GSSAPI")),
    setting!("sasl.username" => connection.security.sasl.username: TEXT),
    setting!("sasl.password" => connection.security.sasl.password: SECRET),
    setting!("sasl.jaas.config" => connection.security.sasl.jaas_config: JAAS),
    setting!("sasl.oauthbearer.token" => connection.security.sasl.oauthbearer_token: SECRET),
];

role_config!(ClientConfig, Role::Client, SETTINGS);

impl ClientConfig {
    /// Connects to the first reachable bootstrap server ([`Cluster::connect`]).
    pub async fn connect(&self) -> Result<Arc<Cluster>, cluster::Error> {
        Cluster::connect(self.bootstrap_servers.clone(), self.connection.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{SaslMechanism, Secret, SecurityProtocol};

    #[test]
    fn every_key_sets_its_field() {
        type Check = fn(&ClientConfig) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("bootstrap.servers", "a:1, b:2", |c| c.bootstrap_servers == ["a:1", "b:2"]),
            ("client.id", "reporter", |c| c.connection.client_id == "reporter"),
            ("request.timeout.ms", "1234", |c| c.connection.request_timeout == Duration::from_millis(1234)),
            ("socket.connection.setup.timeout.ms", "99", |c| c.connection.connect_timeout == Duration::from_millis(99)),
            ("security.protocol", "sasl_ssl", |c| c.connection.security.protocol == SecurityProtocol::SaslSsl),
            ("ssl.ca.location", "/ca.pem", |c| c.connection.security.ssl.ca_location == Some("/ca.pem".into())),
            ("ssl.certificate.location", "/c.pem", |c| {
                c.connection.security.ssl.certificate_location == Some("/c.pem".into())
            }),
            ("ssl.key.location", "/k.pem", |c| c.connection.security.ssl.key_location == Some("/k.pem".into())),
            ("ssl.key.password", "pw", |c| c.connection.security.ssl.key_password == Some(Secret::new("pw"))),
            ("ssl.endpoint.identification.algorithm", "", |c| !c.connection.security.ssl.endpoint_identification),
            ("sasl.mechanism", "scram-sha-512", |c| c.connection.security.sasl.mechanism == SaslMechanism::ScramSha512),
            ("sasl.mechanisms", "PLAIN", |c| c.connection.security.sasl.mechanism == SaslMechanism::Plain),
            ("sasl.username", "alice", |c| c.connection.security.sasl.username.as_deref() == Some("alice")),
            ("sasl.password", "pw", |c| c.connection.security.sasl.password == Some(Secret::new("pw"))),
            ("sasl.jaas.config", "M required username=\"u\";", |c| {
                c.connection.security.sasl.effective_username() == Some("u")
            }),
            ("sasl.oauthbearer.token", "t", |c| c.connection.security.sasl.oauthbearer_token == Some(Secret::new("t"))),
        ];
        let tested: Vec<&str> = cases.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(tested, Role::Client.keys(), "one case per key of the table, in its order");
        for (key, value, check) in cases {
            let mut c = ClientConfig::default();
            c.set(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(check(&c), "{key}={value} gave {c:?}");
        }
    }

    #[test]
    fn invalid_values_name_the_key_the_value_and_what_is_accepted() {
        let mut c = ClientConfig::default();
        let e = c.set("request.timeout.ms", "30s").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value `30s` for `request.timeout.ms`: expected a whole number of milliseconds from 0 to 2147483647"
        );
        let e = c.set("bootstrap.servers", "localhost").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value `localhost` for `bootstrap.servers`: expected a comma-separated list of host:port"
        );
    }
}
