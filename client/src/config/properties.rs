//! Java `.properties` text (`java.util.Properties.load`), as Kafka's own tools
//! read `client.properties`, and applying its settings onto a role's config.

use std::path::Path;

use super::{Error, Origin, RoleConfig};

/// Settings by Kafka name, in the order they were given, each with where it
/// came from. A key given again replaces the earlier value (as in Java).
///
/// ```
/// use cafe_kafka::{ClientConfig, ConsumerConfig, Properties, ProducerConfig};
///
/// let props = Properties::parse(
///     "# shared by producer and consumer\n\
///      bootstrap.servers = 127.0.0.1:9092\n\
///      acks: all\n\
///      group.id cafe-readers\n",
/// )?;
/// let client = ClientConfig::from_properties(&props)?; // skips acks and group.id
/// let producer = ProducerConfig::from_properties(&props)?; // skips the other two
/// let consumer = ConsumerConfig::from_properties(&props)?;
/// assert_eq!(client.bootstrap_servers, ["127.0.0.1:9092"]);
/// assert_eq!(producer.get("acks").as_deref(), Some("all"));
/// assert_eq!(consumer.group.group_id, "cafe-readers");
/// # Ok::<(), cafe_kafka::config::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<Property>,
}

/// One setting of a [`Properties`]. `Debug` hides the values of secret keys
/// ([`is_secret_key`](super::is_secret_key)).
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    /// The key, escapes resolved.
    pub key: String,
    /// The value, escapes resolved. As in Java, leading whitespace is not part
    /// of it and trailing whitespace is; `set` trims values (as Java's
    /// `ConfigDef` does), so it does not matter for settings.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

impl std::fmt::Debug for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if super::is_secret_key(&self.key) { "[hidden]" } else { self.value.as_str() };
        f.debug_struct("Property").field("key", &self.key).field("value", &value).field("origin", &self.origin).finish()
    }
}

impl Properties {
    /// No settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a properties file as UTF-8 (Java reads ISO-8859-1; the two agree
    /// on ASCII, and `\uXXXX` escapes work in both). Errors name the file,
    /// and for a malformed line its number.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        parse_text(&text, &path.display().to_string())
    }

    /// Parses properties text with `java.util.Properties` syntax: `key=value`,
    /// `key: value` or `key value`; `#` and `!` comment lines; blank lines; a
    /// line ending in an odd number of backslashes continues on the next
    /// (whose leading whitespace is skipped); escapes `\\`, `\=`, `\:`, `\ `,
    /// `\t`, `\n`, `\r`, `\f` and `\uXXXX`. Errors name the line as `properties:N`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        parse_text(text, "properties")
    }

    /// Adds `key=value` as given by the program (its origin reads `key=value`).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        let origin = Origin::Given(format!("{key}={value}"));
        self.insert(key, value, origin);
    }

    /// Adds a setting with its origin, replacing an earlier value of the same key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>, origin: Origin) {
        let key = key.into();
        self.entries.retain(|p| p.key != key);
        self.entries.push(Property { key, value: value.into(), origin });
    }

    /// Adds every setting of `other`, whose values replace those of the same keys here.
    pub fn merge(&mut self, other: Properties) {
        for p in other.entries {
            self.insert(p.key, p.value, p.origin);
        }
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    /// The settings in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Property> {
        self.entries.iter()
    }

    /// How many settings there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets every setting of this role onto `config`, in order. A key of
    /// another role is skipped (logged at debug level): a file is usually
    /// shared by producer and consumer. Any other refusal (an invalid value, a
    /// key not supported yet, a key no role knows) stops with that error,
    /// wrapped in [`Error::At`] with the setting's origin.
    pub fn apply<C: RoleConfig>(&self, config: &mut C) -> Result<(), Error> {
        for p in &self.entries {
            match config.set(&p.key, &p.value) {
                Ok(()) => {}
                Err(Error::OtherRole { key, role, owner }) => {
                    tracing::debug!(%key, %role, %owner, origin = %p.origin, "skipped: a setting of another role");
                }
                Err(error) => return Err(Error::At { origin: p.origin.clone(), error: Box::new(error) }),
            }
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = &'a Property;
    type IntoIter = std::slice::Iter<'a, Property>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Whitespace as `Properties.load` sees it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn parse_text(text: &str, source: &str) -> Result<Properties, Error> {
    let mut props = Properties::new();
    let at = |line| Origin::Line { source: source.to_owned(), line };
    // Natural lines end at \n, \r\n or \r.
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalised.split('\n').enumerate();
    while let Some((index, first)) = lines.next() {
        let line = first.trim_start_matches(is_space);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // A logical line: continued while a natural line ends in an odd number
        // of backslashes (an even number is escaped backslashes).
        let mut logical = String::new();
        let mut part = line;
        loop {
            let backslashes = part.chars().rev().take_while(|c| *c == '\\').count();
            if backslashes % 2 == 0 {
                logical.push_str(part);
                break;
            }
            logical.push_str(&part[..part.len() - 1]);
            match lines.next() {
                Some((_, next)) => part = next.trim_start_matches(is_space),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let origin = at(index + 1);
        let unescape = |s: &str| {
            unescape(s)
                .map_err(|reason| Error::At { origin: origin.clone(), error: Box::new(Error::Syntax { reason }) })
        };
        let (key, value) = (unescape(key)?, unescape(value)?);
        props.insert(key, value, origin);
    }
    Ok(props)
}

/// The key ends at the first unescaped `=`, `:` or whitespace; then whitespace
/// and at most one `=` or `:` (when whitespace ended the key) are skipped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut separator = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_space(c) {
            key_end = i;
            separator = c != ' ' && c != '\t' && c != '\u{c}';
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = &line[key_end..];
    if !rest.is_empty() {
        rest = &rest[1..]; // the character that ended the key (all are one byte)
    }
    rest = rest.trim_start_matches(is_space);
    if !separator {
        if let Some(r) = rest.strip_prefix(['=', ':']) {
            rest = r.trim_start_matches(is_space);
        }
    }
    (key, rest)
}

/// Resolves `\` escapes as `Properties.load` does: `\t \n \r \f`, `\uXXXX`
/// (a surrogate pair as two escapes), any other escaped character as itself.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let unit = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate: the low one must follow as another escape.
                    let low = match (chars.next(), chars.next()) {
                        (Some('\\'), Some('u')) => hex4(&mut chars)?,
                        _ => return Err(format!("\\u{unit:04X} is half a surrogate pair")),
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(format!("\\u{unit:04X} is half a surrogate pair"));
                    }
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                out.push(char::from_u32(code).ok_or_else(|| format!("\\u{code:04X} is not a character"))?);
            }
            Some(other) => out.push(other),
            None => {} // a lone trailing backslash (a continuation at the end of the text)
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
    let digits: String = chars.by_ref().take(4).collect();
    match u32::from_str_radix(&digits, 16) {
        Ok(n) if digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()) => Ok(n),
        _ => Err(format!("malformed \\uXXXX escape `\\u{digits}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::{ClientConfig, ConsumerConfig, ProducerConfig};

    fn pairs(text: &str) -> Vec<(String, String)> {
        Properties::parse(text).unwrap().iter().map(|p| (p.key.clone(), p.value.clone())).collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn the_three_separators() {
        assert_eq!(pairs("a=1\nb: 2\nc 3\n"), [kv("a", "1"), kv("b", "2"), kv("c", "3")]);
        // Whitespace around the separator is skipped; one separator only.
        assert_eq!(
            pairs("  a  =  1\nb\t:\t2\nc = = 3\nd == 4"),
            [kv("a", "1"), kv("b", "2"), kv("c", "= 3"), kv("d", "= 4")]
        );
        // Whitespace then `=`: the `=` is the separator, not part of the value.
        assert_eq!(pairs("a = b = c"), [kv("a", "b = c")]);
        // A key alone has an empty value.
        assert_eq!(pairs("flag\nother="), [kv("flag", ""), kv("other", "")]);
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# a comment\n! another\n\n   \n  # indented comment\na=1 # not a comment\n";
        assert_eq!(pairs(text), [kv("a", "1 # not a comment")]);
    }

    #[test]
    fn trailing_whitespace_belongs_to_the_value_and_set_trims_it() {
        let props = Properties::parse("acks = all   \n").unwrap();
        assert_eq!(props.get("acks"), Some("all   "));
        let producer = ProducerConfig::from_properties(&props).unwrap();
        assert_eq!(producer.get("acks").as_deref(), Some("all"));
    }

    #[test]
    fn a_trailing_backslash_continues_the_line() {
        let text = "bootstrap.servers = a:1,\\\n    b:2,\\\n\tc:3\nnext=x\n";
        assert_eq!(pairs(text), [kv("bootstrap.servers", "a:1,b:2,c:3"), kv("next", "x")]);
        // Two backslashes are one escaped backslash: no continuation.
        assert_eq!(pairs("path=c:\\\\\nnext=x"), [kv("path", "c:\\"), kv("next", "x")]);
        // A continued line that looks like a comment is still part of the value.
        assert_eq!(pairs("a=1\\\n#2\n"), [kv("a", "1#2")]);
        // A continuation at the very end of the text.
        assert_eq!(pairs("a=1\\"), [kv("a", "1")]);
        // Windows and old Mac line ends.
        assert_eq!(pairs("a=1\r\nb=2\rc=3"), [kv("a", "1"), kv("b", "2"), kv("c", "3")]);
    }

    #[test]
    fn escapes() {
        assert_eq!(pairs(r"a\=b\:c\ d = x\\y\tz"), [kv("a=b:c d", "x\\y\tz")]);
        assert_eq!(pairs(r"k = caf\u00e9 \uD83D\uDE00 \q"), [kv("k", "café 😀 q")]);
        let e = Properties::parse("ok=1\nk = \\u12G4\n").unwrap_err();
        assert_eq!(e.to_string(), "properties:2: malformed \\uXXXX escape `\\u12G4`");
        let e = Properties::parse("k=\\uD83D\n").unwrap_err();
        assert!(e.to_string().contains("half a surrogate pair"), "{e}");
    }

    #[test]
    fn a_key_given_again_replaces_the_earlier_value() {
        let props = Properties::parse("acks=0\nlinger.ms=1\nacks=all\n").unwrap();
        assert_eq!(props.len(), 2);
        assert_eq!(props.get("acks"), Some("all"));
        assert_eq!(
            props.iter().last().map(|p| &p.origin),
            Some(&Origin::Line { source: "properties".into(), line: 3 })
        );
    }

    #[test]
    fn line_numbers_count_natural_lines() {
        let text = "# header\n\nlinger.ms=1\\\n  2\nno.such.key = 1\n";
        let props = Properties::parse(text).unwrap();
        let lines: Vec<_> = props.iter().map(|p| p.origin.to_string()).collect();
        assert_eq!(lines, ["properties:3", "properties:5"]);
        assert_eq!(props.get("linger.ms"), Some("12"));
        let e = ProducerConfig::from_properties(&props).unwrap_err();
        assert_eq!(e.to_string(), "properties:5: unknown setting `no.such.key`");
    }

    #[test]
    fn a_shared_file_applies_to_each_role_what_is_its_own() {
        let text = "bootstrap.servers=h:1\nclient.id=me\nacks=all\nlinger.ms=20\ngroup.id=g\n\
                    fetch.max.wait.ms=100\nrequest.timeout.ms=7000\nretry.backoff.ms=50\n";
        let props = Properties::parse(text).unwrap();
        let client = ClientConfig::from_properties(&props).unwrap();
        assert_eq!(
            (client.bootstrap_servers.as_slice(), client.connection.client_id.as_str()),
            (&["h:1".to_owned()][..], "me")
        );
        assert_eq!(client.connection.request_timeout.as_millis(), 7000);
        let producer = ProducerConfig::from_properties(&props).unwrap();
        assert_eq!((producer.linger.as_millis(), producer.request_timeout.as_millis()), (20, 7000));
        assert_eq!(producer.backoff.initial.as_millis(), 50);
        let consumer = ConsumerConfig::from_properties(&props).unwrap();
        assert_eq!((consumer.group.group_id.as_str(), consumer.fetch.max_wait.as_millis()), ("g", 100));
        assert_eq!(consumer.group.backoff.initial.as_millis(), 50);
    }

    #[test]
    fn errors_carry_the_origin_and_say_what_is_accepted() {
        let props = Properties::parse("group.id=g\nfetch.max.wait.ms = soon\n").unwrap();
        let e = ConsumerConfig::from_properties(&props).unwrap_err();
        assert_eq!(
            e.to_string(),
            "properties:2: invalid value `soon` for `fetch.max.wait.ms`: expected a whole number of \
             milliseconds from 0 to 2147483647"
        );
        assert_eq!(e.key(), Some("fetch.max.wait.ms"));
        // The other roles skip the consumer's key, bad value and all.
        ProducerConfig::from_properties(&props).unwrap();
        // A key no role knows fails for every role.
        let mut props = Properties::new();
        props.insert(
            "sasl.kerberos.service.name",
            "kafka",
            Origin::Given("-X sasl.kerberos.service.name=kafka".into()),
        );
        for e in [
            ClientConfig::from_properties(&props).unwrap_err(),
            ProducerConfig::from_properties(&props).unwrap_err(),
            ConsumerConfig::from_properties(&props).unwrap_err(),
        ] {
            assert_eq!(
                e.to_string(),
                "-X sasl.kerberos.service.name=kafka: `sasl.kerberos.service.name` is a Kafka client setting \
                 that cafe-kafka does not support yet"
            );
        }
    }

    #[test]
    fn set_and_merge_keep_the_latest_value() {
        let mut file = Properties::parse("acks=0\nlinger.ms=9\n").unwrap();
        let mut given = Properties::new();
        given.set("acks", "all");
        file.merge(given);
        assert_eq!(file.get("acks"), Some("all"));
        assert_eq!(file.iter().map(|p| p.origin.to_string()).collect::<Vec<_>>(), ["properties:2", "acks=all"]);
        assert!(Role::Producer.knows("acks") && !Role::Consumer.knows("acks"));
    }

    #[test]
    fn a_missing_file_names_it() {
        let e = Properties::from_file("/nonexistent/client.properties").unwrap_err();
        assert!(e.to_string().starts_with("cannot read properties file /nonexistent/client.properties: "), "{e}");
    }
}
