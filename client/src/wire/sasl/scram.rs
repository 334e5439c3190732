//! SCRAM (RFC 5802, RFC 7677) as a pure state machine: the client-first
//! message, the client-final message computed from the server-first one, and
//! the check of the server's signature. No channel binding (`n,,`), as
//! Kafka's SCRAM-SHA-256/512 run without it. The nonce is an argument, so the
//! RFC examples are tests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha512,
    /// SCRAM-SHA-1, only for RFC 5802's own test vector.
    #[cfg(test)]
    Sha1,
}

impl Hash {
    fn h(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
            #[cfg(test)]
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Hmac<sha2::Sha256>>(key, data),
            Hash::Sha512 => run::<Hmac<sha2::Sha512>>(key, data),
            #[cfg(test)]
            Hash::Sha1 => run::<Hmac<sha1::Sha1>>(key, data),
        }
    }

    /// `Hi(str, salt, i)`: PBKDF2 with this hash's HMAC.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password, salt, iterations).to_vec(),
            Hash::Sha512 => pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(password, salt, iterations).to_vec(),
            #[cfg(test)]
            Hash::Sha1 => pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 20>(password, salt, iterations).to_vec(),
        }
    }
}

/// What the server said that ends the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramError {
    #[error("the server's SCRAM message is malformed ({0})")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend ours")]
    Nonce,
    #[error("the server refused: {0}")]
    Server(String),
    #[error("the server's signature is wrong: it does not know the password (a server in the middle?)")]
    Signature,
    #[error("the server asked for {0} PBKDF2 iterations (refused above {MAX_ITERATIONS})")]
    Iterations(u32),
}

/// Far above Kafka's 4096 default and the 8192 managed services use, low
/// enough that a hostile server cannot make the client hash for minutes.
const MAX_ITERATIONS: u32 = 1_000_000;

/// One SCRAM exchange, client side.
#[derive(Debug)]
pub(crate) struct Scram {
    hash: Hash,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// `ServerSignature`, known once the client-final message is built.
    expected_server_signature: Option<Vec<u8>>,
}

impl Scram {
    /// Starts an exchange for `username` with the client nonce `nonce`
    /// (printable ASCII without `,`).
    pub(crate) fn new(hash: Hash, username: &str, password: &str, nonce: &str) -> Self {
        let user = username.replace('=', "=3D").replace(',', "=2C");
        Self {
            hash,
            password: password.to_owned(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_owned(),
            expected_server_signature: None,
        }
    }

    /// `client-first-message`: the GS2 header `n,,` (no channel binding) and the bare part.
    pub(crate) fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The `client-final-message` answering `server_first`.
    pub(crate) fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = attribute(server_first, 'e') {
            return Err(ScramError::Server(e.to_owned()));
        }
        let nonce = attribute(server_first, 'r').ok_or(ScramError::Malformed("no nonce"))?;
        let salt = attribute(server_first, 's').ok_or(ScramError::Malformed("no salt"))?;
        let iterations = attribute(server_first, 'i').ok_or(ScramError::Malformed("no iteration count"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = B64.decode(salt).map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 =
            iterations.parse().ok().filter(|i| *i > 0).ok_or(ScramError::Malformed("bad iteration count"))?;
        if iterations > MAX_ITERATIONS {
            return Err(ScramError::Iterations(iterations));
        }
        let h = self.hash;
        let salted = h.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.h(&client_key);
        // "biws" is base64("n,,"), the GS2 header again.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(k, s)| k ^ s).collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(h.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the `server-final-message`: the exchange succeeded only if the
    /// server proved it knows the password too.
    pub(crate) fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = attribute(text, 'e') {
            return Err(ScramError::Server(e.to_owned()));
        }
        let v = attribute(text, 'v').ok_or(ScramError::Malformed("no verifier"))?;
        let v = B64.decode(v).map_err(|_| ScramError::Malformed("verifier is not base64"))?;
        match &self.expected_server_signature {
            Some(expected) if constant_time_eq(expected, &v) => Ok(()),
            _ => Err(ScramError::Signature),
        }
    }
}

/// The value of attribute `name` (`name=value`) of a comma-separated SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh client nonce: 24 random bytes, base64 (printable, no comma).
pub(crate) fn nonce() -> String {
    let bytes: [u8; 24] = rand::random();
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: SCRAM-SHA-256 for user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_example() {
        let mut s = Scram::new(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = s.client_final(server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert_eq!(s.verify_server_final(b"v=AAAA"), Err(ScramError::Signature));
    }

    /// RFC 5802 section 5: the same exchange with SHA-1.
    #[test]
    fn rfc5802_sha1_example() {
        let mut s = Scram::new(Hash::Sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(s.client_first(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let client_final =
            s.client_final(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        s.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
    }

    #[test]
    fn server_errors_and_bad_nonces_end_the_exchange() {
        let mut s = Scram::new(Hash::Sha512, "a,b=c", "pw", "abc");
        assert_eq!(s.client_first(), b"n,,n=a=2Cb=3Dc,r=abc");
        assert_eq!(s.client_final(b"e=unknown-user"), Err(ScramError::Server("unknown-user".into())));
        assert_eq!(s.client_final(b"r=xyz123,s=AAAA,i=4096"), Err(ScramError::Nonce));
        assert_eq!(s.client_final(b"r=abc,s=AAAA,i=4096"), Err(ScramError::Nonce), "the server must add to it");
        assert_eq!(s.client_final(b"r=abcd,s=AAAA,i=99999999"), Err(ScramError::Iterations(99_999_999)));
        assert!(matches!(s.client_final(b"r=abcd,i=1"), Err(ScramError::Malformed(_))));
        // Before any client-final, no server signature can be right.
        assert_eq!(s.verify_server_final(b"v=AAAA"), Err(ScramError::Signature));
        assert_eq!(s.verify_server_final(b"e=invalid-proof"), Err(ScramError::Server("invalid-proof".into())));
    }

    #[test]
    fn sha512_round_trip_against_an_independent_server_computation() {
        // The server's side of RFC 5802 section 3, written out separately.
        let (salt, iterations) = (b"saltsalt".as_slice(), 4096);
        let mut s = Scram::new(Hash::Sha512, "alice", "alice-secret", "cnonce");
        let server_first = format!("r=cnonceSNONCE,s={},i={iterations}", B64.encode(salt));
        let client_final = String::from_utf8(s.client_final(server_first.as_bytes()).unwrap()).unwrap();
        let salted = pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(b"alice-secret", salt, iterations);
        let auth = format!("n=alice,r=cnonce,{server_first},c=biws,r=cnonceSNONCE");
        let server_key = Hash::Sha512.hmac(&salted, b"Server Key");
        let v = B64.encode(Hash::Sha512.hmac(&server_key, auth.as_bytes()));
        // The proof XORed with the client signature gives a key whose hash is StoredKey.
        let proof = B64.decode(attribute(&client_final, 'p').unwrap()).unwrap();
        let stored = Hash::Sha512.h(&Hash::Sha512.hmac(&salted, b"Client Key"));
        let signature = Hash::Sha512.hmac(&stored, auth.as_bytes());
        let key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(Hash::Sha512.h(&key), stored);
        s.verify_server_final(format!("v={v}").as_bytes()).unwrap();
    }

    #[test]
    fn nonces_are_printable_and_fresh() {
        let (a, b) = (nonce(), nonce());
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_graphic() && c != b','));
    }
}
