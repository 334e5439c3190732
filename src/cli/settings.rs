//! Kafka settings from `--config FILE` (a Java `client.properties`) and
//! `-X key=value` (as kcat takes them), applied onto each config in this
//! order, later beating earlier: the library's defaults, the application's
//! (`defaults.rs`), the file, `-X` (in command-line order), then the
//! dedicated flags (`--acks`, `--group`, ...), each only when given.

use std::sync::Arc;
use std::time::Duration;

use cafe_kafka::config::Origin;
use cafe_kafka::{ClientConfig, Cluster, Properties, RoleConfig};

use super::{Common, defaults, host_name};
use crate::error::Error;

impl Common {
    /// Reads `--config` and `-X` and resolves the client settings (bootstrap
    /// servers, client id, time-outs). [`super::run`] calls it before any
    /// command; every error is a usage error, found before connecting. Keys
    /// no role knows fail here, whichever command runs.
    pub(crate) fn resolve(&mut self) -> Result<(), Error> {
        let mut props = match &self.config_file {
            Some(path) => Properties::from_file(path)?,
            None => Properties::new(),
        };
        for (key, value) in &self.properties_given {
            // The label shows up in error messages: never with a secret in it.
            let shown = if cafe_kafka::config::is_secret_key(key) { "[hidden]" } else { value.as_str() };
            props.insert(key.as_str(), value.as_str(), Origin::Given(format!("-X {key}={shown}")));
        }
        let mut client =
            ClientConfig { bootstrap_servers: vec![defaults::BOOTSTRAP.to_owned()], ..ClientConfig::default() };
        client.connection.client_id = host_name();
        props.apply(&mut client)?;
        // The servers of `-b` are checked when connecting (`cluster`), as before
        // --config and -X existed: a command that never connects does not need them.
        if let Some(id) = &self.client_id {
            client.connection.client_id = id.clone();
        }
        if let Some(ms) = self.request_timeout_ms {
            client.connection.request_timeout = Duration::from_millis(ms);
        }
        // The security flags go through the keys' own parsing, so a bad value
        // reads as any other bad setting does.
        let flags = [
            ("security.protocol", "--security-protocol", &self.security_protocol),
            ("sasl.mechanism", "--sasl-mechanism", &self.sasl_mechanism),
            ("sasl.username", "--sasl-username", &self.sasl_username),
        ];
        for (key, flag, value) in flags {
            if let Some(v) = value {
                client.set(key, v).map_err(|e| Error::Usage(format!("{flag} {v}: {e}")))?;
            }
        }
        // A password on the command line would sit in the shell history and in
        // `ps`: it comes from the environment (or the config file) only.
        if let Ok(password) = std::env::var(SASL_PASSWORD_ENV) {
            client.set("sasl.password", &password)?;
        }
        crate::error::set_principal(principal(&client));
        self.properties = props;
        self.client = client;
        Ok(())
    }

    /// Applies the `--config` and `-X` settings of `C`'s role onto `config`
    /// (which holds the defaults, the application's included); the caller
    /// then applies its dedicated flags.
    pub(crate) fn apply<C: RoleConfig>(&self, config: &mut C) -> Result<(), Error> {
        Ok(self.properties.apply(config)?)
    }

    /// `request.timeout.ms`, for the clients that take it as a plain duration
    /// (admin, Schema Registry) and the producer.
    pub fn request_timeout(&self) -> Duration {
        self.client.connection.request_timeout
    }

    /// `bootstrap.servers`: those of `-b` (or CAFE_BOOTSTRAP) when given, else
    /// the resolved ones (-X, --config, the application's default).
    pub fn bootstrap_servers(&self) -> Result<Vec<String>, Error> {
        match self.bootstrap {
            Some(_) => self.bootstrap_list(),
            None => Ok(self.client.bootstrap_servers.clone()),
        }
    }

    /// Connects to the cluster with the resolved client settings.
    pub async fn cluster(&self) -> Result<Arc<Cluster>, Error> {
        let client = ClientConfig { bootstrap_servers: self.bootstrap_servers()?, ..self.client.clone() };
        Ok(client.connect().await?)
    }
}

/// The environment variable that gives `sasl.password`.
pub const SASL_PASSWORD_ENV: &str = "CAFE_SASL_PASSWORD";

/// The principal the broker most likely sees for `client`, as Kafka's default
/// principal builder names it, for messages about ACL denials.
fn principal(client: &ClientConfig) -> String {
    use cafe_kafka::config::{SaslMechanism, SecurityProtocol};
    let security = &client.connection.security;
    let sasl = &security.sasl;
    match security.protocol {
        SecurityProtocol::SaslSsl | SecurityProtocol::SaslPlaintext => {
            let user = match sasl.mechanism {
                SaslMechanism::OAuthBearer => {
                    sasl.jaas_config.as_ref().and_then(|j| j.option("unsecuredLoginStringClaim_sub")).map(str::to_owned)
                }
                _ => sasl.effective_username().map(str::to_owned),
            };
            format!("User:{}", user.unwrap_or_else(|| "?".into()))
        }
        SecurityProtocol::Ssl if security.ssl.certificate_location.is_some() => {
            "the principal of the client certificate".into()
        }
        _ => "User:ANONYMOUS".into(),
    }
}

/// `-X key=value`: split at the first `=` (values may hold more).
pub(crate) fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE, a Kafka setting such as acks=all".into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::error::exit;

    fn resolved(args: &[&str]) -> Result<Cli, Error> {
        let mut cli = Cli::try_parse_from(std::iter::once("cafe").chain(args.iter().copied())).expect("parses");
        cli.common.resolve()?;
        Ok(cli)
    }

    /// A properties file under the system's temporary directory, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn path(&self) -> &str {
            self.0.to_str().expect("a UTF-8 temporary path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn properties_file(text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("cafe-test-{}.properties", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, text).expect("write a temporary file");
        TempFile(path)
    }

    #[test]
    fn every_default_in_the_help_comes_from_a_known_key() {
        use clap::CommandFactory;
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(!help.contains("[default: ]"), "{path} --{}: {help}", arg.get_id());
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "cafe");
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("`request.timeout.ms` [default: 30000]"), "{help}");
    }

    #[test]
    fn a_setting_is_key_equals_value() {
        assert_eq!(parse_setting("acks=all"), Ok(("acks".into(), "all".into())));
        assert_eq!(parse_setting(" k = a=b"), Ok(("k".into(), " a=b".into())));
        assert!(parse_setting("acks").is_err());
        assert!(parse_setting("=1").is_err());
    }

    /// CAFE_BOOTSTRAP counts as `-b` (`make` and CI set it): what the
    /// servers are when the flag is not given but `otherwise` is.
    fn env_or(otherwise: &str) -> Vec<String> {
        let given = std::env::var("CAFE_BOOTSTRAP").unwrap_or_else(|_| otherwise.to_owned());
        given.split(',').map(|s| s.trim().to_owned()).collect()
    }

    #[test]
    fn client_settings_flag_beats_x_beats_file_beats_app_default() {
        let cli = resolved(&["topic", "describe", "t"]).unwrap();
        assert_eq!(cli.common.bootstrap_servers().unwrap(), env_or(defaults::BOOTSTRAP));
        assert_eq!(cli.common.client.connection.client_id, host_name());

        let file = properties_file("bootstrap.servers=file:1\nclient.id=from-file\nrequest.timeout.ms=1000\n");
        let cli = resolved(&["--config", file.path(), "topic", "describe", "t"]).unwrap();
        assert_eq!(cli.common.bootstrap_servers().unwrap(), env_or("file:1"));
        assert_eq!(cli.common.client.connection.client_id, "from-file");
        assert_eq!(cli.common.request_timeout(), Duration::from_secs(1));

        let x = ["--config", file.path(), "-X", "client.id=from-x", "-X", "request.timeout.ms=2000"];
        let cli = resolved(&[&x[..], &["-X", "bootstrap.servers=x:1", "topic", "describe", "t"]].concat()).unwrap();
        assert_eq!(cli.common.client.connection.client_id, "from-x");
        assert_eq!(cli.common.request_timeout(), Duration::from_secs(2));
        assert_eq!(cli.common.bootstrap_servers().unwrap(), env_or("x:1"));

        let flags = ["--client-id", "from-flag", "--request-timeout-ms", "3000", "-b", "flag:1"];
        let cli = resolved(&[&x[..], &flags[..], &["topic", "describe", "t"]].concat()).unwrap();
        assert_eq!(cli.common.client.connection.client_id, "from-flag");
        assert_eq!(cli.common.request_timeout(), Duration::from_secs(3));
        assert_eq!(cli.common.bootstrap_servers().unwrap(), ["flag:1"]);
    }

    #[test]
    fn producer_settings_flag_beats_x_beats_file_beats_app_default() {
        let producer = |args: &[&str]| {
            let cli = resolved(args).unwrap();
            let Command::Send(send) = cli.command else { panic!("a send command") };
            send.producer.config(&cli.common).unwrap()
        };
        // The application's acks=1 over the library's all.
        assert_eq!(producer(&["send"]).acks, defaults::ACKS);
        let file = properties_file("acks=0\nlinger.ms=50\nrequest.timeout.ms=4000\ngroup.id=skipped\n");
        let c = producer(&["--config", file.path(), "send"]);
        assert_eq!((c.acks.wire_value(), c.linger.as_millis(), c.request_timeout.as_millis()), (0, 50, 4000));
        let c = producer(&["--config", file.path(), "-X", "acks=all", "send"]);
        assert_eq!((c.acks.wire_value(), c.linger.as_millis()), (-1, 50));
        let c =
            producer(&["--config", file.path(), "-X", "acks=all", "send", "--acks", "1", "--request-timeout-ms", "9"]);
        assert_eq!((c.acks.wire_value(), c.request_timeout.as_millis()), (1, 9));
    }

    #[test]
    fn consumer_settings_flag_beats_x_beats_file_beats_app_default() {
        let consumer = |args: &[&str]| {
            let cli = resolved(args).unwrap();
            let Command::Consume(consume) = cli.command else { panic!("a consume command") };
            consume.config(&cli.common).unwrap()
        };
        assert_eq!(consumer(&["consume"]).group.group_id, defaults::GROUP_ID);
        let file = properties_file("group.id=from-file\nfetch.max.wait.ms=100\nacks=all\n");
        let c = consumer(&["--config", file.path(), "consume"]);
        assert_eq!((c.group.group_id.as_str(), c.fetch.max_wait.as_millis()), ("from-file", 100));
        let c = consumer(&["--config", file.path(), "-X", "group.id=from-x", "consume"]);
        assert_eq!((c.group.group_id.as_str(), c.fetch.max_wait.as_millis()), ("from-x", 100));
        let c = consumer(&[
            "--config",
            file.path(),
            "-X",
            "group.id=from-x",
            "consume",
            "-g",
            "flag",
            "--fetch-max-wait-ms",
            "7",
        ]);
        assert_eq!((c.group.group_id.as_str(), c.fetch.max_wait.as_millis()), ("flag", 7));
    }

    #[test]
    fn bad_settings_are_usage_errors_with_their_origin() {
        let usage = |args: &[&str]| {
            let e = resolved(args).expect_err("refused");
            assert_eq!(e.exit_code(), exit::USAGE, "{e}");
            e.to_string()
        };
        assert_eq!(usage(&["-X", "no.such.key=1", "send"]), "-X no.such.key=1: unknown setting `no.such.key`");
        assert_eq!(
            usage(&["-X", "bootstrap.server=h:1", "send"]),
            "-X bootstrap.server=h:1: unknown setting `bootstrap.server`; did you mean `bootstrap.servers`?"
        );
        let file = properties_file("# ok\nclient.id=x\nsasl.kerberos.service.name=kafka\n");
        let text = usage(&["--config", file.path(), "send"]);
        assert_eq!(
            text,
            format!(
                "{}:3: `sasl.kerberos.service.name` is a Kafka client setting that cafe-kafka does not support yet",
                file.path()
            )
        );
        let text = usage(&["--config", "/nonexistent/cafe.properties", "send"]);
        assert!(text.starts_with("cannot read properties file /nonexistent/cafe.properties: "), "{text}");
        assert!(text.ends_with("(given with --config)"), "{text}");
        // A bad value of a role's key fails when that role is built.
        let cli = resolved(&["-X", "acks=2", "send"]).unwrap();
        let Command::Send(send) = cli.command else { panic!() };
        let e = send.producer.config(&cli.common).unwrap_err();
        assert_eq!(e.exit_code(), exit::USAGE);
        assert_eq!(e.to_string(), "-X acks=2: invalid value `2` for `acks`: expected 0, 1, all or -1");
    }
}
