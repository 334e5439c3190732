//! SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL password`,
//! with an empty authorization id as Kafka's clients send it.

/// The single PLAIN message for `username` and `password`.
pub(crate) fn message(username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(username.len() + password.len() + 2);
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn nul_separated_without_authzid() {
        assert_eq!(super::message("alice", "pw"), b"\0alice\0pw");
    }
}
