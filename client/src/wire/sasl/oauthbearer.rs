//! SASL OAUTHBEARER (RFC 7628, Kafka's KIP-255): the client's one message,
//! and the unsecured JWT (`alg: none`) that Kafka's unsecured login module
//! builds from its JAAS options, for test clusters whose brokers run the
//! matching unsecured validator. Time is an argument (seconds since 1970).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::config::JaasConfig;

/// `gs2-header kvsep "auth=Bearer " token kvsep [extensions kvsep] kvsep`.
pub(crate) fn initial_response(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("n,,\x01auth=Bearer {token}\x01");
    for (k, v) in extensions {
        out.push_str(&format!("{k}={v}\x01"));
    }
    out.push('\x01');
    out.into_bytes()
}

/// What the client answers to an error challenge (RFC 7628 section 3.2.3): a
/// lone kvsep, after which the server fails the exchange.
pub(crate) const ERROR_ACK: &[u8] = b"\x01";

/// An unsecured JWT and its extensions from the options of an
/// `OAuthBearerLoginModule` line, as Kafka's
/// `OAuthBearerUnsecuredLoginCallbackHandler` reads them:
/// `unsecuredLoginStringClaim_<name>="value"` claims (the principal is the
/// `sub` claim unless `unsecuredLoginPrincipalClaimName` says otherwise),
/// `unsecuredLoginLifetimeSeconds` (default 3600) and
/// `unsecuredLoginExtension_<name>` SASL extensions. `None` without a principal.
pub(crate) fn unsecured_jwt(jaas: &JaasConfig, now_secs: u64) -> Option<(String, Vec<(String, String)>)> {
    let principal_claim = jaas.option("unsecuredLoginPrincipalClaimName").unwrap_or("sub");
    let lifetime: u64 = jaas.option("unsecuredLoginLifetimeSeconds").and_then(|s| s.parse().ok()).unwrap_or(3600);
    let mut claims = serde_json::Map::new();
    let mut extensions = Vec::new();
    for (key, value) in jaas.options() {
        if let Some(name) = key.strip_prefix("unsecuredLoginStringClaim_") {
            claims.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
        } else if let Some(name) = key.strip_prefix("unsecuredLoginExtension_") {
            extensions.push((name.to_owned(), value.to_owned()));
        }
    }
    claims.get(principal_claim)?;
    claims.insert("iat".into(), now_secs.into());
    claims.insert("exp".into(), (now_secs + lifetime).into());
    let header = B64URL.encode(br#"{"alg":"none"}"#);
    let payload = B64URL.encode(serde_json::Value::Object(claims).to_string());
    // An unsecured JWS has an empty signature: `header.payload.`
    Some((format!("{header}.{payload}."), extensions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_response_is_rfc7628_shaped() {
        assert_eq!(initial_response("T0K", &[]), b"n,,\x01auth=Bearer T0K\x01\x01");
        let ext = [("traceId".to_owned(), "1".to_owned())];
        assert_eq!(initial_response("T", &ext), b"n,,\x01auth=Bearer T\x01traceId=1\x01\x01");
    }

    #[test]
    fn unsecured_jwt_carries_the_claims_and_lifetime() {
        let jaas = JaasConfig::parse(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"alice\" unsecuredLoginLifetimeSeconds=\"60\" \
             unsecuredLoginExtension_traceId=\"t1\";",
        )
        .unwrap();
        let (jwt, ext) = unsecured_jwt(&jaas, 1_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "no signature");
        assert_eq!(B64URL.decode(parts[0]).unwrap(), br#"{"alg":"none"}"#);
        let claims: serde_json::Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims, serde_json::json!({"sub": "alice", "iat": 1000, "exp": 1060}));
        assert_eq!(ext, [("traceId".to_owned(), "t1".to_owned())]);
        let no_sub = JaasConfig::parse("M required unsecuredLoginStringClaim_scope=x").unwrap();
        assert!(unsecured_jwt(&no_sub, 0).is_none());
    }
}
