//! How connections are secured, with the Java client's names and defaults:
//! `security.protocol`, the `ssl.*` keys (PEM files, as librdkafka takes them)
//! and the `sasl.*` keys, including a `sasl.jaas.config` login module line as
//! Confluent Cloud's `client.properties` has it. Secrets are [`Secret`]s: their
//! `Debug` and the config's `get` never show them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::value::Kind;

/// `security.protocol`: TLS or not, SASL or not. Default `PLAINTEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL.
    #[default]
    Plaintext,
    /// TLS, no SASL (a client certificate may authenticate).
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS: what managed Kafka services ask for.
    SaslSsl,
}

impl SecurityProtocol {
    /// True for `SSL` and `SASL_SSL`.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// True for `SASL_PLAINTEXT` and `SASL_SSL`.
    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        })
    }
}

impl FromStr for SecurityProtocol {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(()),
        }
    }
}

/// `sasl.mechanism` (also librdkafka's `sasl.mechanisms`). Java's default is
/// `GSSAPI` (Kerberos), which this client does not speak: connecting with it
/// fails before any socket is opened, naming the mechanisms it does speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaslMechanism {
    /// Kerberos; the Java default, not supported here.
    #[default]
    Gssapi,
    /// RFC 4616: user name and password in the clear (only over TLS, please).
    Plain,
    /// RFC 7677 SCRAM with SHA-256.
    ScramSha256,
    /// SCRAM with SHA-512 (Kafka's KIP-84).
    ScramSha512,
    /// RFC 7628 bearer tokens (KIP-255).
    OAuthBearer,
}

impl SaslMechanism {
    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Gssapi => "GSSAPI",
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "GSSAPI" => Ok(SaslMechanism::Gssapi),
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            _ => Err(()),
        }
    }
}

/// The keys whose values are secrets (or hold them, as a JAAS line does): their
/// values are hidden in `Debug`, in `get`, and in the errors about them.
pub fn is_secret_key(key: &str) -> bool {
    matches!(key, "sasl.password" | "sasl.jaas.config" | "sasl.oauthbearer.token" | "ssl.key.password")
        || key.ends_with(".password")
}

/// A password, key passphrase or token: shown as `[hidden]` by `Debug` and by
/// the config's `get`, so it cannot leak through a log line or an error.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// A `sasl.jaas.config` line: `<LoginModule class> required key="value" ...;`.
/// Only the options are used (which mechanism runs is `sasl.mechanism`'s to
/// say); their values may be secrets, so `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JaasConfig {
    /// The login module class, e.g. `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub login_module: String,
    options: BTreeMap<String, String>,
}

impl JaasConfig {
    /// An option's value (`username`, `password`, `unsecuredLoginStringClaim_sub`, ...).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Every option, by key.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Parses one login module entry as Java's `JaasConfig` does: a class
    /// name, a control flag, `key=value` options (values quoted or bare), and
    /// an optional closing `;`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || "a JAAS login module line: `<LoginModule class> required key=\"value\" ...;`".to_owned();
        let body = text.trim();
        let body = body.strip_suffix(';').unwrap_or(body).trim();
        let (login_module, rest) = split_word(body);
        let (flag, mut rest) = split_word(rest);
        if login_module.is_empty()
            || !matches!(flag.to_ascii_lowercase().as_str(), "required" | "requisite" | "sufficient" | "optional")
        {
            return Err(expected());
        }
        let mut options = BTreeMap::new();
        while !rest.is_empty() {
            let (key, value) = rest.split_once('=').ok_or_else(expected)?;
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(expected());
            }
            let (value, remainder) = option_value(value.trim_start()).ok_or_else(expected)?;
            options.insert(key.to_owned(), value);
            rest = remainder.trim_start();
        }
        Ok(Self { login_module: login_module.to_owned(), options })
    }
}

/// The first whitespace-separated word of `s`, and the rest after the spaces.
fn split_word(s: &str) -> (&str, &str) {
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}

/// A JAAS option value at the start of `s`: `"quoted"` (backslash escapes the
/// next character) or a bare word; the value and what follows it. `None` for
/// an unclosed quote.
fn option_value(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let (word, _) = split_word(s);
        return Some((word.to_owned(), &s[word.len()..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(|(_, escaped)| escaped)),
            '"' => return Some((out, &quoted[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

impl fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaasConfig")
            .field("login_module", &self.login_module)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The `ssl.*` settings: PEM files, as librdkafka takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslConfig {
    /// `ssl.ca.location`: a PEM file of CA certificates to trust instead of the
    /// system's roots (Java's `ssl.truststore.location` with type PEM). Default:
    /// none, the system's roots (or the bundled Mozilla roots where there are none).
    pub ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`: this client's PEM certificate chain, for
    /// brokers that ask for one (mTLS). Default none.
    pub certificate_location: Option<PathBuf>,
    /// `ssl.key.location`: the PEM private key (PKCS#8, PKCS#1 or SEC1) of
    /// `ssl.certificate.location`. Default none.
    pub key_location: Option<PathBuf>,
    /// `ssl.key.password`: refused when set, since encrypted keys are not
    /// supported (decrypt the key file with `openssl pkey`). Default none.
    pub key_password: Option<Secret>,
    /// `ssl.endpoint.identification.algorithm`: `https` (the default, as in
    /// Java since 2.0) checks that the broker's certificate names the host
    /// dialled; empty turns the check off (the chain is still verified).
    pub endpoint_identification: bool,
}

impl Default for SslConfig {
    fn default() -> Self {
        Self {
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
            endpoint_identification: true,
        }
    }
}

/// The `sasl.*` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslConfig {
    /// `sasl.mechanism` (or `sasl.mechanisms`). Default `GSSAPI`, as in Java (refused here).
    pub mechanism: SaslMechanism,
    /// `sasl.username` (librdkafka's name); else `username` of `sasl.jaas.config`.
    pub username: Option<String>,
    /// `sasl.password` (librdkafka's name); else `password` of `sasl.jaas.config`.
    pub password: Option<Secret>,
    /// `sasl.jaas.config`: a PlainLoginModule, ScramLoginModule or
    /// OAuthBearerLoginModule line whose options give the credentials.
    pub jaas_config: Option<JaasConfig>,
    /// `sasl.oauthbearer.token`: a bearer token to send as is (cafe's own key;
    /// Java and librdkafka get tokens from a callback). Without it, OAUTHBEARER
    /// builds an unsecured JWT from the JAAS options, as Kafka's unsecured
    /// login module does (for test clusters).
    pub oauthbearer_token: Option<Secret>,
}

impl SaslConfig {
    /// `sasl.username`, else the JAAS `username` option.
    pub fn effective_username(&self) -> Option<&str> {
        self.username.as_deref().or_else(|| self.jaas_config.as_ref()?.option("username"))
    }

    /// `sasl.password`, else the JAAS `password` option.
    pub fn effective_password(&self) -> Option<&str> {
        self.password.as_ref().map(Secret::expose).or_else(|| self.jaas_config.as_ref()?.option("password"))
    }
}

/// How to secure every connection of a client: `security.protocol` with its
/// TLS and SASL settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// `security.protocol`. Default `PLAINTEXT`.
    pub protocol: SecurityProtocol,
    /// Used when the protocol is `SSL` or `SASL_SSL`.
    pub ssl: SslConfig,
    /// Used when the protocol is `SASL_PLAINTEXT` or `SASL_SSL`.
    pub sasl: SaslConfig,
}

// ---------------------------------------------------------------------------
// Value kinds of the keys above (the client's table lists the rows).

/// A file path; empty means not set.
pub(crate) const PATH: PathKind = PathKind;
pub(crate) struct PathKind;

impl Kind<Option<PathBuf>> for PathKind {
    fn parse(&self, value: &str) -> Result<Option<PathBuf>, String> {
        Ok(Some(value).filter(|v| !v.is_empty()).map(PathBuf::from))
    }

    fn show(&self, value: &Option<PathBuf>) -> String {
        value.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }
}

/// A secret; empty means not set, and a set one shows as `[hidden]`.
pub(crate) const SECRET: SecretKind = SecretKind;
pub(crate) struct SecretKind;

impl Kind<Option<Secret>> for SecretKind {
    fn parse(&self, value: &str) -> Result<Option<Secret>, String> {
        Ok(Some(value).filter(|v| !v.is_empty()).map(Secret::new))
    }

    fn show(&self, value: &Option<Secret>) -> String {
        if value.is_some() { "[hidden]".into() } else { String::new() }
    }
}

/// `sasl.jaas.config`: parsed when set; shown with its option values hidden.
pub(crate) const JAAS: JaasKind = JaasKind;
pub(crate) struct JaasKind;

impl Kind<Option<JaasConfig>> for JaasKind {
    fn parse(&self, value: &str) -> Result<Option<JaasConfig>, String> {
        if value.is_empty() {
            return Ok(None);
        }
        JaasConfig::parse(value).map(Some)
    }

    fn show(&self, value: &Option<JaasConfig>) -> String {
        match value {
            None => String::new(),
            Some(j) => {
                let opts: Vec<String> = j.options.keys().map(|k| format!("{k}=\"[hidden]\"")).collect();
                format!("{} required {};", j.login_module, opts.join(" "))
            }
        }
    }
}

/// `ssl.endpoint.identification.algorithm`: `https` or empty (`none` too, as
/// librdkafka spells it).
pub(crate) const ENDPOINT_IDENTIFICATION: EndpointKind = EndpointKind;
pub(crate) struct EndpointKind;

impl Kind<bool> for EndpointKind {
    fn parse(&self, value: &str) -> Result<bool, String> {
        match value.to_ascii_lowercase().as_str() {
            "https" => Ok(true),
            "" | "none" => Ok(false),
            _ => Err("https, or empty to skip the host name check".into()),
        }
    }

    fn show(&self, value: &bool) -> String {
        if *value { "https".into() } else { String::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_lines_as_confluent_cloud_writes_them() {
        let j = JaasConfig::parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="KEY" password="se\"cret";"#,
        )
        .unwrap();
        assert_eq!(j.login_module, "org.apache.kafka.common.security.plain.PlainLoginModule");
        assert_eq!(j.option("username"), Some("KEY"));
        assert_eq!(j.option("password"), Some("se\"cret"));
        let j = JaasConfig::parse(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=alice unsecuredLoginLifetimeSeconds=\"60\"",
        )
        .unwrap();
        assert_eq!(j.option("unsecuredLoginStringClaim_sub"), Some("alice"));
        assert_eq!(j.option("unsecuredLoginLifetimeSeconds"), Some("60"));
        assert!(JaasConfig::parse("PlainLoginModule username=\"a\"").is_err(), "no control flag");
        assert!(JaasConfig::parse("M required username=\"a").is_err(), "unclosed quote");
    }

    #[test]
    fn a_malformed_jaas_line_is_refused_without_its_password() {
        let mut c = crate::ClientConfig::default();
        let e = c.set("sasl.jaas.config", "M required password=\"p4ss").unwrap_err().to_string();
        assert!(e.starts_with("invalid value `[hidden]` for `sasl.jaas.config`"), "{e}");
        let mut props = crate::Properties::new();
        props.insert("sasl.password", "p4ss", super::super::Origin::Given("-X".into()));
        assert!(!format!("{props:?}").contains("p4ss"));
    }

    #[test]
    fn secrets_never_show() {
        let j = JaasConfig::parse(r#"M required username="u" password="p4ss";"#).unwrap();
        assert!(!format!("{j:?}").contains("p4ss"));
        assert!(!JAAS.show(&Some(j)).contains("p4ss"));
        let s = SaslConfig { password: Some(Secret::new("p4ss")), ..Default::default() };
        assert!(!format!("{s:?}").contains("p4ss"));
        assert_eq!(SECRET.show(&s.password), "[hidden]");
    }
}
