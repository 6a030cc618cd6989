//! Typed configuration, read once from the environment at start.
//!
//! Each subcommand loads only the sections it needs (`migrate` needs no HSM). Every problem is
//! collected before reporting, so an operator fixes the whole environment in one go instead of
//! one variable per restart. Secrets (database URL, PIN) are [`SecretString`]s: they never show
//! in `Debug` output.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use oxvault_core::rate_limit::Limit;
use secrecy::SecretString;

/// Versions kept per secret path unless configured otherwise (`OXVAULT_MAX_SECRET_VERSIONS`).
pub const DEFAULT_MAX_SECRET_VERSIONS: u32 = 100;

/// Google's published id_token keys.
const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// Everything `oxvault-origin serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP listener binds (`OXVAULT_LISTEN_ADDR`); port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Where `/metrics` is served (`OXVAULT_METRICS_ADDR`, default 127.0.0.1:9464; `off`:
    /// nowhere): a listener of its own, so the API's port never shows it.
    pub metrics_addr: Option<SocketAddr>,
    pub database: DatabaseConfig,
    pub hsm: HsmConfig,
    /// Run pending migrations before serving (`OXVAULT_MIGRATE_ON_START`).
    pub migrate_on_start: bool,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Password hashing threads, the most Argon2 hashes computed at once
    /// (`OXVAULT_PASSWORD_HASH_CONCURRENCY`; default: half the CPUs, at least one). Each hash
    /// takes one core for ~15 ms, and each thread keeps its 19 MiB of Argon2 memory from its
    /// first hash on; leaving the other half of the CPUs free, and running these threads at a
    /// lower priority, keeps a flood of logins from starving secret reads.
    pub password_hash_concurrency: usize,
    /// Google sign-in, when `OXVAULT_GOOGLE_CLIENT_ID` is set.
    pub google: Option<GoogleConfig>,
    /// The secret the edge proves itself with (`OXVAULT_EDGE_SHARED_SECRET`, at least 32
    /// characters). Only a request carrying it may name the client's address; without it the
    /// origin trusts no forwarded address and uses the TCP peer's.
    pub edge_shared_secret: Option<SecretString>,
    /// The base URL people reach the edge at (`OXVAULT_PUBLIC_URL`, default
    /// `http://127.0.0.1:8787`), without a trailing slash: share links and mails point there.
    pub public_url: String,
    /// Outgoing mail (share links, invitations).
    pub mail: MailConfig,
    /// The origin's own coarse per-client limit on its costly routes (sign-in, token
    /// exchanges, share lookups), `OXVAULT_ORIGIN_RATE_LIMIT` as `N/S` (default `120/60`).
    /// Per process: the exact limits are the edge's.
    pub origin_rate_limit: Limit,
    /// Billing: tier limits and prices, and the request meter.
    pub billing: BillingConfig,
    /// Versions kept per secret path (`OXVAULT_MAX_SECRET_VERSIONS`, default 100, 1 to
    /// 100000): a write past it erases the oldest, like Vault KV v2's `max_versions`.
    pub max_secret_versions: u32,
}

/// The largest `OXVAULT_MAX_SECRET_VERSIONS`: past it the limit would bound nothing.
const MAX_MAX_SECRET_VERSIONS: u32 = 100_000;

/// Outgoing mail: where to send it and how patiently to retry.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `OXVAULT_SMTP_URL`, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@mail:465`
    /// (lettre's URL form). Unset: mail is queued in the outbox and not sent until it is set.
    pub smtp_url: Option<SecretString>,
    /// The sender address (`OXVAULT_MAIL_FROM`, default `oxvault <no-reply@oxvault.local>`).
    pub from: String,
    /// Longest wait between two delivery attempts of one message (`OXVAULT_MAIL_RETRY_MAX_SECS`,
    /// default 300); waits double from one second up to it.
    pub retry_max: Duration,
    /// How often the outbox is polled for due messages when nothing wakes it
    /// (`OXVAULT_MAIL_POLL_MS`, default 1000).
    pub poll: Duration,
}

/// PostgreSQL settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`; may carry a password, hence secret.
    pub url: SecretString,
    /// Size of the main pool per origin process (`OXVAULT_DB_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// Size of the hot path's statement pool per origin process, for the principal check
    /// (`OXVAULT_DB_READ_CONNECTIONS`).
    pub read_connections: u32,
    /// Connections of the batched secret-read lookups per origin process: at most this many
    /// lookup statements run at once, and reads that arrive meanwhile share the next one
    /// (`OXVAULT_DB_VIEW_CONNECTIONS`).
    pub view_connections: u32,
    /// How long a request waits for a pooled connection before the database counts as down.
    pub acquire_timeout: Duration,
}

/// PKCS#11 settings.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module (`OXVAULT_HSM_MODULE`), e.g. SoftHSM2's `libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token holding the KEK (`OXVAULT_HSM_TOKEN_LABEL`). Slots are found by
    /// label because slot numbers change when tokens are added.
    pub token_label: String,
    /// User PIN of the token (`OXVAULT_HSM_PIN`).
    pub pin: SecretString,
    /// Label of the key-encryption key inside the token (`OXVAULT_HSM_KEK_LABEL`).
    pub kek_label: String,
    /// Label of the Ed25519 key pair that signs access tokens
    /// (`OXVAULT_HSM_SIGNING_KEY_LABEL`).
    pub signing_key_label: String,
    /// Label of the HMAC key that chains the audit trail (`OXVAULT_HSM_AUDIT_KEY_LABEL`).
    pub audit_key_label: String,
    /// Most PKCS#11 sessions (and concurrent HSM calls) per process (`OXVAULT_HSM_SESSIONS`).
    pub sessions: usize,
    /// How often a running origin lists the token's KEKs again, to start wrapping under a KEK
    /// that `rotate-kek` created (`OXVAULT_HSM_KEK_REFRESH_SECS`, default 60).
    pub kek_refresh: Duration,
    /// The longest a request waits for one HSM call, its turn included, before it fails with
    /// 503 (`OXVAULT_HSM_CALL_TIMEOUT_MS`, default 10000).
    pub call_timeout: Duration,
    /// The cache of opened data keys: `OXVAULT_DEK_CACHE_SIZE` keys (default 10000; 0 turns
    /// it off), each kept `OXVAULT_DEK_CACHE_TTL_SECS` (default 60, at most 3600).
    pub dek_cache: crate::crypto::DekCacheSettings,
}

/// What `oxvault-origin rotate-kek` needs: the database and the HSM.
#[derive(Debug, Clone)]
pub struct KekRotationConfig {
    pub database: DatabaseConfig,
    pub hsm: HsmConfig,
}

/// The environment did not describe a usable configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.join("\n"))]
pub struct ConfigError {
    /// One line per missing or malformed variable.
    pub problems: Vec<String>,
}

/// Shortest edge secret accepted: guessing it must be out of reach.
const MIN_EDGE_SECRET_LEN: usize = 32;
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8787";
const DEFAULT_MAIL_FROM: &str = "oxvault <no-reply@oxvault.local>";

const DEFAULT_KEK_LABEL: &str = "oxvault-kek";
const DEFAULT_SIGNING_KEY_LABEL: &str = "oxvault-token-signing";
const DEFAULT_AUDIT_KEY_LABEL: &str = "oxvault-audit-mac";

/// Reads variables through a lookup function, collecting every problem on the way.
struct Reader<F> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn new(lookup: F) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    /// A non-empty variable's value, if set.
    fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn required(&mut self, name: &str, meaning: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems
                .push(format!("  {name} is not set: it must name {meaning}"));
            String::new()
        })
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.optional(name) {
            None => default,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                self.problems.push(format!(
                    "  {name}={text:?} is not valid: expected {expected}"
                ));
                default
            }),
        }
    }

    fn flag(&mut self, name: &str) -> bool {
        match self.optional(name).as_deref().map(str::trim) {
            None => false,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                self.problems.push(format!(
                    "  {name}={other:?} is not valid: expected true or false"
                ));
                false
            }
        }
    }

    fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

impl Config {
    /// Loads the configuration of `serve` from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Loads the configuration of `serve` through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Reader::new(lookup);
        let listen_addr = env.parsed(
            "OXVAULT_LISTEN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address like 127.0.0.1:8080",
        );
        let metrics_addr = match env
            .optional("OXVAULT_METRICS_ADDR")
            .as_deref()
            .map(str::trim)
        {
            Some("off") => None,
            _ => Some(env.parsed(
                "OXVAULT_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9464)),
                "an address like 127.0.0.1:9464, or off",
            )),
        };
        let database = DatabaseConfig::read(&mut env);
        let hsm = HsmConfig::read(&mut env);
        let migrate_on_start = env.flag("OXVAULT_MIGRATE_ON_START");
        let grace_secs: u64 = env.parsed("OXVAULT_SHUTDOWN_GRACE_SECS", 20, "whole seconds");
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let password_hash_concurrency = env.parsed(
            "OXVAULT_PASSWORD_HASH_CONCURRENCY",
            (cpus / 2).max(1),
            "a positive whole number",
        );
        let google = env
            .optional("OXVAULT_GOOGLE_CLIENT_ID")
            .map(|client_id| GoogleConfig {
                client_id: client_id.trim().to_owned(),
                jwks_url: env
                    .optional("OXVAULT_GOOGLE_JWKS_URL")
                    .unwrap_or_else(|| GOOGLE_JWKS_URL.to_owned()),
            });
        let edge_shared_secret = env.optional("OXVAULT_EDGE_SHARED_SECRET").map(|secret| {
            if secret.trim().len() < MIN_EDGE_SECRET_LEN {
                env.problems.push(format!(
                    "  OXVAULT_EDGE_SHARED_SECRET must be at least {MIN_EDGE_SECRET_LEN} characters"
                ));
            }
            SecretString::from(secret.trim().to_owned())
        });
        let public_url = public_url(&mut env);
        let mail = MailConfig::read(&mut env);
        let origin_rate_limit = origin_rate_limit(&mut env);
        let billing = BillingConfig::read(&mut env);
        let max_secret_versions = env.parsed(
            "OXVAULT_MAX_SECRET_VERSIONS",
            DEFAULT_MAX_SECRET_VERSIONS,
            "a whole number from 1 to 100000",
        );
        if !(1..=MAX_MAX_SECRET_VERSIONS).contains(&max_secret_versions) {
            env.problems.push(format!(
                "  OXVAULT_MAX_SECRET_VERSIONS must be from 1 to {MAX_MAX_SECRET_VERSIONS}"
            ));
        }
        env.finish(Self {
            listen_addr,
            metrics_addr,
            database,
            hsm,
            migrate_on_start,
            shutdown_grace: Duration::from_secs(grace_secs),
            password_hash_concurrency: password_hash_concurrency.max(1),
            google,
            edge_shared_secret,
            public_url,
            mail,
            origin_rate_limit,
            billing,
            max_secret_versions,
        })
    }
}

impl KekRotationConfig {
    /// Loads the configuration of `rotate-kek` from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Loads the configuration of `rotate-kek` through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Reader::new(lookup);
        let database = DatabaseConfig::read(&mut env);
        let hsm = HsmConfig::read(&mut env);
        env.finish(Self { database, hsm })
    }
}

impl DatabaseConfig {
    /// Loads the database section alone (what `migrate` needs) from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = Reader::new(env_lookup);
        let config = Self::read(&mut env);
        env.finish(config)
    }

    fn read<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> Self {
        let url = env.required(
            "DATABASE_URL",
            "a PostgreSQL URL, e.g. postgres://user@host/db",
        );
        let max_connections = env.parsed(
            "OXVAULT_DB_MAX_CONNECTIONS",
            16u32,
            "a positive whole number",
        );
        // Measured (issue 10, 2 cores): reads ran faster on 8 connections than on 16, writes
        // (which hold a main-pool connection through their audit wait) slower.
        let read_connections = env.parsed(
            "OXVAULT_DB_READ_CONNECTIONS",
            8u32,
            "a positive whole number",
        );
        // Few, so that reads batch under load. Measured (issue 10, 2 cores, 32 connections):
        // PostgreSQL spent 72 us per read on 1 (batches of 6), 85 on 2 (batches of 4).
        let view_connections = env.parsed(
            "OXVAULT_DB_VIEW_CONNECTIONS",
            1u32,
            "a positive whole number",
        );
        for (name, value) in [
            ("OXVAULT_DB_MAX_CONNECTIONS", max_connections),
            ("OXVAULT_DB_READ_CONNECTIONS", read_connections),
            ("OXVAULT_DB_VIEW_CONNECTIONS", view_connections),
        ] {
            if value == 0 {
                env.problems.push(format!("  {name} must be at least 1"));
            }
        }
        let acquire_secs: u64 = env.parsed("OXVAULT_DB_ACQUIRE_TIMEOUT_SECS", 5, "whole seconds");
        Self {
            url: SecretString::from(url),
            max_connections,
            read_connections,
            view_connections,
            acquire_timeout: Duration::from_secs(acquire_secs.max(1)),
        }
    }
}

impl HsmConfig {
    fn read<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> Self {
        let module = env.required(
            "OXVAULT_HSM_MODULE",
            "the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so",
        );
        let token_label = env.required("OXVAULT_HSM_TOKEN_LABEL", "the label of the HSM token");
        let pin = env.required("OXVAULT_HSM_PIN", "the user PIN of the HSM token");
        let kek_label = env
            .optional("OXVAULT_HSM_KEK_LABEL")
            .unwrap_or_else(|| DEFAULT_KEK_LABEL.to_owned());
        let signing_key_label = env
            .optional("OXVAULT_HSM_SIGNING_KEY_LABEL")
            .unwrap_or_else(|| DEFAULT_SIGNING_KEY_LABEL.to_owned());
        let audit_key_label = env
            .optional("OXVAULT_HSM_AUDIT_KEY_LABEL")
            .unwrap_or_else(|| DEFAULT_AUDIT_KEY_LABEL.to_owned());
        let sessions = env.parsed("OXVAULT_HSM_SESSIONS", 4usize, "a positive whole number");
        if sessions == 0 {
            env.problems
                .push("  OXVAULT_HSM_SESSIONS must be at least 1".to_owned());
        }
        let kek_refresh_secs: u64 = env.parsed("OXVAULT_HSM_KEK_REFRESH_SECS", 60, "whole seconds");
        if kek_refresh_secs == 0 {
            env.problems
                .push("  OXVAULT_HSM_KEK_REFRESH_SECS must be at least 1".to_owned());
        }
        let call_timeout_ms: u64 = env.parsed(
            "OXVAULT_HSM_CALL_TIMEOUT_MS",
            u64::try_from(crate::crypto::HSM_CALL_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            "whole milliseconds",
        );
        if call_timeout_ms == 0 {
            env.problems
                .push("  OXVAULT_HSM_CALL_TIMEOUT_MS must be at least 1".to_owned());
        }
        let defaults = crate::crypto::DekCacheSettings::default();
        let dek_capacity = env.parsed(
            "OXVAULT_DEK_CACHE_SIZE",
            defaults.capacity,
            "a whole number",
        );
        let dek_ttl_secs: u64 = env.parsed(
            "OXVAULT_DEK_CACHE_TTL_SECS",
            defaults.ttl.as_secs(),
            "whole seconds",
        );
        if dek_ttl_secs > 3600 {
            env.problems
                .push("  OXVAULT_DEK_CACHE_TTL_SECS must be at most 3600".to_owned());
        }
        Self {
            dek_cache: crate::crypto::DekCacheSettings {
                capacity: dek_capacity,
                ttl: Duration::from_secs(dek_ttl_secs),
            },
            module: PathBuf::from(module),
            token_label,
            pin: SecretString::from(pin),
            kek_label,
            signing_key_label,
            audit_key_label,
            sessions,
            kek_refresh: Duration::from_secs(kek_refresh_secs.max(1)),
            call_timeout: Duration::from_millis(call_timeout_ms.max(1)),
        }
    }
}

/// `OXVAULT_PUBLIC_URL`: an http(s) URL with nothing after the host but an optional path,
/// kept without its trailing slash so `{public_url}/s/{id}` is plain concatenation.
fn public_url<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> String {
    let Some(text) = env.optional("OXVAULT_PUBLIC_URL") else {
        return DEFAULT_PUBLIC_URL.to_owned();
    };
    let text = text.trim();
    match url::Url::parse(text) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none() =>
        {
            url.as_str().trim_end_matches('/').to_owned()
        }
        _ => {
            env.problems.push(format!(
                "  OXVAULT_PUBLIC_URL={text:?} is not valid: expected an http(s) URL such as https://vault.example.com"
            ));
            DEFAULT_PUBLIC_URL.to_owned()
        }
    }
}

fn origin_rate_limit<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> Limit {
    const DEFAULT: Limit = Limit::from_const(120, 60);
    let Some(text) = env.optional("OXVAULT_ORIGIN_RATE_LIMIT") else {
        return DEFAULT;
    };
    Limit::parse(&text).unwrap_or_else(|err| {
        env.problems.push(format!(
            "  OXVAULT_ORIGIN_RATE_LIMIT={text:?} is not valid: {err}"
        ));
        DEFAULT
    })
}

impl MailConfig {
    fn read<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> Self {
        let smtp_url = env
            .optional("OXVAULT_SMTP_URL")
            .map(|url| SecretString::from(url.trim().to_owned()));
        let from = env.optional("OXVAULT_MAIL_FROM").map_or_else(
            || DEFAULT_MAIL_FROM.to_owned(),
            |from| from.trim().to_owned(),
        );
        let retry_max_secs: u64 = env.parsed("OXVAULT_MAIL_RETRY_MAX_SECS", 300, "whole seconds");
        let poll_ms: u64 = env.parsed("OXVAULT_MAIL_POLL_MS", 1000, "milliseconds");
        Self {
            smtp_url,
            from,
            retry_max: Duration::from_secs(retry_max_secs.max(1)),
            poll: Duration::from_millis(poll_ms.max(10)),
        }
    }
}

/// Billing: what each tier allows and charges, and how the request meter buffers and flushes.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// The tiers, defaults overridden by `OXVAULT_BILLING_TIER_FREE`, `_PRO`, `_BUSINESS`,
    /// `_ENTERPRISE`: comma-separated `key=value` entries, any of `vaults`, `secrets`,
    /// `agents` (a whole number or `unlimited`), `requests` (free requests per month),
    /// `price` or `read_price` and `write_price` (USD per paid request, e.g. `0.0015`).
    pub tiers: oxvault_core::billing::TierTable,
    pub meter: MeterConfig,
}

/// The request meter's buffer and flushes (origin/src/http/metering.rs).
#[derive(Debug, Clone)]
pub struct MeterConfig {
    /// Longest a metered request waits in memory before its batch is written
    /// (`OXVAULT_USAGE_FLUSH_MS`, default 1000).
    pub flush_interval: Duration,
    /// Rows per INSERT; a full batch is written at once (`OXVAULT_USAGE_BATCH_SIZE`, default
    /// 500, at most 10000).
    pub batch_size: usize,
    /// Rows buffered in memory at most; beyond it (the database down or far behind) requests
    /// are served but not metered, and the loss is counted in the log (`OXVAULT_USAGE_BUFFER`,
    /// default 100000, from the batch size to 10000000).
    pub buffer: usize,
}

const MAX_USAGE_BATCH: usize = 10_000;
/// Ten million rows (about 2 GB at worst): beyond anything an origin should hold in memory.
const MAX_USAGE_BUFFER: usize = 10_000_000;

impl BillingConfig {
    fn read<F: Fn(&str) -> Option<String>>(env: &mut Reader<F>) -> Self {
        use oxvault_core::billing::{TIER_NAMES, TierTable};
        let mut tiers = TierTable::default();
        for name in TIER_NAMES {
            let var = format!("OXVAULT_BILLING_TIER_{}", name.to_ascii_uppercase());
            let (Some(spec), Some((_, limits))) = (env.optional(&var), tiers.get(name)) else {
                continue;
            };
            match limits.with_overrides(spec.trim()) {
                Ok(limits) => tiers.set(name, limits),
                Err(problems) => env
                    .problems
                    .extend(problems.into_iter().map(|p| format!("  {var}: {p}"))),
            }
        }
        let flush_ms: u64 = env.parsed("OXVAULT_USAGE_FLUSH_MS", 1000, "milliseconds");
        if flush_ms == 0 {
            env.problems
                .push("  OXVAULT_USAGE_FLUSH_MS must be at least 1".to_owned());
        }
        let batch_size: usize = env.parsed("OXVAULT_USAGE_BATCH_SIZE", 500, "a whole number");
        if !(1..=MAX_USAGE_BATCH).contains(&batch_size) {
            env.problems.push(format!(
                "  OXVAULT_USAGE_BATCH_SIZE must be from 1 to {MAX_USAGE_BATCH}"
            ));
        }
        let buffer: usize = env.parsed("OXVAULT_USAGE_BUFFER", 100_000, "a whole number");
        if buffer < batch_size || buffer > MAX_USAGE_BUFFER {
            env.problems.push(format!(
                "  OXVAULT_USAGE_BUFFER must be from OXVAULT_USAGE_BATCH_SIZE to {MAX_USAGE_BUFFER}"
            ));
        }
        Self {
            tiers,
            meter: MeterConfig {
                flush_interval: Duration::from_millis(flush_ms.max(1)),
                batch_size: batch_size.clamp(1, MAX_USAGE_BATCH),
                buffer: buffer.clamp(1, MAX_USAGE_BUFFER),
            },
        }
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where Google's keys are and whom its tokens must be for.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// Our OAuth client id: the `aud` every accepted id_token must carry.
    pub client_id: String,
    /// Google's JWKS (`https://www.googleapis.com/oauth2/v3/certs`; tests serve their own).
    pub jwks_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/oxvault"),
        ("OXVAULT_HSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so"),
        ("OXVAULT_HSM_TOKEN_LABEL", "oxvault"),
        ("OXVAULT_HSM_PIN", "1234"),
    ];

    #[test]
    fn the_required_variables_alone_give_the_documented_defaults() {
        let config = Config::from_lookup(lookup(MINIMAL)).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.metrics_addr.map(|addr| addr.to_string()).as_deref(),
            Some("127.0.0.1:9464")
        );
        assert_eq!(config.hsm.kek_label, DEFAULT_KEK_LABEL);
        assert_eq!(config.hsm.signing_key_label, DEFAULT_SIGNING_KEY_LABEL);
        assert_eq!(config.hsm.sessions, 4);
        assert_eq!(config.hsm.kek_refresh, Duration::from_secs(60));
        assert_eq!(config.hsm.call_timeout, Duration::from_secs(10));
        assert_eq!(config.database.max_connections, 16);
        assert_eq!(config.database.read_connections, 8);
        assert_eq!(config.database.view_connections, 1);
        assert!(!config.migrate_on_start);
        assert_eq!(config.hsm.pin.expose_secret(), "1234");
        assert!(config.edge_shared_secret.is_none());
        assert_eq!(config.public_url, "http://127.0.0.1:8787");
        assert!(config.mail.smtp_url.is_none());
        assert_eq!(config.mail.retry_max, Duration::from_secs(300));
        assert_eq!(config.max_secret_versions, 100);
    }

    #[test]
    fn versions_kept_per_path_are_1_to_100000() {
        let with = |value: &str| {
            let mut pairs = MINIMAL.to_vec();
            pairs.push(("OXVAULT_MAX_SECRET_VERSIONS", value));
            Config::from_lookup(lookup(&pairs))
        };
        assert_eq!(with("3").unwrap().max_secret_versions, 3);
        assert_eq!(with("100000").unwrap().max_secret_versions, 100_000);
        for bad in ["0", "100001", "-1", "many"] {
            let err = with(bad).unwrap_err();
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.contains("OXVAULT_MAX_SECRET_VERSIONS")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_public_url_loses_its_trailing_slash_and_must_be_http() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_PUBLIC_URL", "https://vault.example.com/"));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.public_url, "https://vault.example.com");

        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_PUBLIC_URL", "ftp://vault.example.com"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.to_string().contains("OXVAULT_PUBLIC_URL"), "{err}");
    }

    #[test]
    fn a_short_edge_secret_is_refused_and_a_long_one_kept_secret() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_EDGE_SHARED_SECRET", "too-short"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");

        let secret = "0123456789abcdef0123456789abcdef-edge";
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_EDGE_SHARED_SECRET", secret));
        pairs.push(("OXVAULT_SMTP_URL", "smtp://user:mailpass@127.0.0.1:2525"));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(
            config.edge_shared_secret.as_ref().unwrap().expose_secret(),
            secret
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(!debug.contains("mailpass"), "{debug}");
    }

    #[test]
    fn every_missing_variable_is_named_in_one_error() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        let text = err.to_string();
        for name in [
            "DATABASE_URL",
            "OXVAULT_HSM_MODULE",
            "OXVAULT_HSM_TOKEN_LABEL",
            "OXVAULT_HSM_PIN",
        ] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
        assert_eq!(err.problems.len(), 4);
    }

    #[test]
    fn malformed_values_are_reported_not_defaulted() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_LISTEN_ADDR", "localhost"));
        pairs.push(("OXVAULT_MIGRATE_ON_START", "maybe"));
        pairs.push(("OXVAULT_HSM_SESSIONS", "0"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    #[test]
    fn metrics_can_move_or_be_turned_off_but_not_be_garbled() {
        let with = |value: &'static str| {
            let mut pairs = MINIMAL.to_vec();
            pairs.push(("OXVAULT_METRICS_ADDR", value));
            Config::from_lookup(lookup(&pairs))
        };
        assert_eq!(with("off").unwrap().metrics_addr, None);
        assert_eq!(
            with("0.0.0.0:9100").unwrap().metrics_addr,
            Some(SocketAddr::from(([0, 0, 0, 0], 9100)))
        );
        let err = with("everywhere").unwrap_err();
        assert!(err.to_string().contains("OXVAULT_METRICS_ADDR"), "{err}");
    }

    #[test]
    fn rotate_kek_needs_the_database_and_the_hsm_but_no_listener() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_LISTEN_ADDR", "not an address"));
        pairs.push(("OXVAULT_HSM_KEK_REFRESH_SECS", "5"));
        let config = KekRotationConfig::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.hsm.kek_refresh, Duration::from_secs(5));
        let err = KekRotationConfig::from_lookup(lookup(&MINIMAL[1..])).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn debug_output_hides_the_pin_and_database_url() {
        let mut pairs = MINIMAL.to_vec();
        pairs[0] = ("DATABASE_URL", "postgres://app:hunter2@db/oxvault");
        pairs[3] = ("OXVAULT_HSM_PIN", "pin-9876");
        let printed = format!("{:?}", Config::from_lookup(lookup(&pairs)).unwrap());
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("pin-9876"));
    }

    #[test]
    fn billing_defaults_need_no_variables() {
        let config = Config::from_lookup(lookup(MINIMAL)).unwrap();
        assert_eq!(
            config.billing.tiers,
            oxvault_core::billing::TierTable::default()
        );
        assert_eq!(config.billing.meter.flush_interval, Duration::from_secs(1));
        assert_eq!(config.billing.meter.batch_size, 500);
        assert_eq!(config.billing.meter.buffer, 100_000);
    }

    #[test]
    fn a_tier_variable_overrides_only_the_keys_it_names() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push((
            "OXVAULT_BILLING_TIER_PRO",
            "vaults=2, requests=5,read_price=0.0015,agents=unlimited",
        ));
        pairs.push(("OXVAULT_USAGE_FLUSH_MS", "50"));
        let config = Config::from_lookup(lookup(&pairs)).unwrap();
        let (_, pro) = config.billing.tiers.get("pro").unwrap();
        let (_, default_pro) = oxvault_core::billing::TierTable::default()
            .get("pro")
            .unwrap();
        assert_eq!(pro.vaults, Some(2));
        assert_eq!(pro.agents, None);
        assert_eq!(pro.free_requests, 5);
        assert_eq!(pro.read_price.to_string(), "0.0015");
        assert_eq!(pro.secrets, default_pro.secrets);
        assert_eq!(pro.write_price, default_pro.write_price);
        assert_eq!(
            config.billing.tiers.get("free"),
            oxvault_core::billing::TierTable::default().get("free")
        );
        assert_eq!(
            config.billing.meter.flush_interval,
            Duration::from_millis(50)
        );
    }

    #[test]
    fn every_bad_billing_setting_is_reported_at_once() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("OXVAULT_BILLING_TIER_FREE", "vaults=three,price=0.0000001"));
        pairs.push(("OXVAULT_BILLING_TIER_ENTERPRISE", "seats=10"));
        pairs.push(("OXVAULT_USAGE_FLUSH_MS", "0"));
        pairs.push(("OXVAULT_USAGE_BATCH_SIZE", "20000"));
        pairs.push(("OXVAULT_USAGE_BUFFER", "lots"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 6, "{text}");
        for needle in [
            "OXVAULT_BILLING_TIER_FREE: vaults",
            "OXVAULT_BILLING_TIER_FREE: price",
            "OXVAULT_BILLING_TIER_ENTERPRISE",
            "OXVAULT_USAGE_FLUSH_MS",
            "OXVAULT_USAGE_BATCH_SIZE",
            "OXVAULT_USAGE_BUFFER",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }
}
