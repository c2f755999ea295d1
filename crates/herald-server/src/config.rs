//! Server configuration: start-up settings (flags, TOML file) and the run-time parameters
//! that CONFIG GET/SET read and change.
//!
//! Every parameter has Redis's name and Redis's value syntax (`32mb`, `1gb`, the
//! `client-output-buffer-limit` class triples), so operators can reuse what they know.
//! This module parses and validates values; it does not apply them to connections.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use herald_engine::{ClientClass, OutputLimit, OutputLimits};
use herald_proto::limits::{
    PROTO_INLINE_MAX_BYTES, PROTO_MAX_BULK_LEN_BYTES, PROTO_MAX_MULTIBULK_LEN,
};
use herald_proto::Limits;
use herald_store::aof::FsyncPolicy;
use parking_lot::RwLock;
use serde::Deserialize;

use crate::persistence::{AofConfig, AofSettings};

/// Redis default port.
pub const DEFAULT_PORT: u16 = 6379;
/// Redis default `maxclients`.
pub const DEFAULT_MAXCLIENTS: usize = 10_000;
/// Redis default `client-query-buffer-limit`: 1 GB of unparsed input per client.
pub const DEFAULT_QUERY_BUFFER_LIMIT_BYTES: usize = 1024 * 1024 * 1024;
/// Smallest `proto-max-bulk-len` Redis accepts (1 MB).
pub const MIN_PROTO_MAX_BULK_LEN_BYTES: usize = 1024 * 1024;
/// Number of logical databases, as Redis (`databases 16`); fixed at start.
pub const DATABASES: usize = 16;
/// Server cron frequency (`hz`): how often soft output limits are enforced, per second.
pub const DEFAULT_HZ: u32 = 10;

/// A configuration value that could not be used; the text names the value and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A memory size that is not `<digits>[b|k|kb|m|mb|g|gb]`.
    #[error("argument must be a memory value")]
    BadMemory,
    /// A plain number that is not one.
    #[error("argument couldn't be parsed into an integer")]
    BadInteger,
    /// A value outside the parameter's range.
    #[error("argument must be between {min} and {max} inclusive")]
    OutOfRange {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// Malformed `client-output-buffer-limit`.
    #[error("Invalid client class specified in buffer limit configuration.")]
    BadClientClass,
    /// `client-output-buffer-limit` needs triples.
    #[error("Wrong number of arguments in buffer limit configuration.")]
    BadLimitArity,
    /// Not an IP address.
    #[error("Invalid bind address '{0}'")]
    BadBind(String),
    /// The TOML file could not be read or parsed.
    #[error("{0}")]
    File(String),
    /// Not `yes` or `no`.
    #[error("argument must be 'yes' or 'no'")]
    BadYesNo,
    /// Not an fsync policy.
    #[error("appendfsync must be always, everysec or no, not '{0}'")]
    BadFsync(String),
    /// `appendfilename` must be a plain file name.
    #[error("appendfilename can't be a path, just a filename: '{0}'")]
    BadFileName(String),
    /// A start-up parameter's bad value, named (`maxclients: argument must be ...`).
    #[error("{parameter}: {reason}")]
    Parameter {
        /// The parameter, as its flag and TOML key spell it.
        parameter: &'static str,
        /// What is wrong with the value.
        reason: Box<ConfigError>,
    },
}

impl ConfigError {
    fn of(parameter: &'static str) -> impl FnOnce(ConfigError) -> ConfigError {
        move |reason| ConfigError::Parameter {
            parameter,
            reason: Box::new(reason),
        }
    }
}

/// Parses a Redis memory value: `1024`, `10k` (1000), `10kb` (1024), `m`, `mb`, `g`, `gb`,
/// case-insensitive (Redis `memtoull`).
pub fn parse_memory(text: &str) -> Result<u64, ConfigError> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(ConfigError::BadMemory),
    };
    if digits.is_empty() {
        return Err(ConfigError::BadMemory);
    }
    let value: u64 = digits.parse().map_err(|_| ConfigError::BadMemory)?;
    value.checked_mul(multiplier).ok_or(ConfigError::BadMemory)
}

/// Largest `proto-max-bulk-len` and `client-query-buffer-limit` accepted: 4 GB.
const MAX_BUFFER_SETTING_BYTES: u64 = 4 * 1024 * 1024 * 1024;

fn parse_bounded_memory(text: &str, min: u64) -> Result<usize, ConfigError> {
    let value = parse_memory(text)?;
    if !(min..=MAX_BUFFER_SETTING_BYTES).contains(&value) {
        return Err(ConfigError::OutOfRange {
            min,
            max: MAX_BUFFER_SETTING_BYTES,
        });
    }
    usize::try_from(value).map_err(|_| ConfigError::OutOfRange {
        min,
        max: usize::MAX as u64,
    })
}

/// Parses `proto-max-bulk-len`: a memory value from 1 MB to 4 GB.
pub fn parse_proto_max_bulk_len(text: &str) -> Result<usize, ConfigError> {
    parse_bounded_memory(text, MIN_PROTO_MAX_BULK_LEN_BYTES as u64)
}

/// Parses `client-query-buffer-limit`: a memory value from 1 MB to 4 GB (as Redis).
pub fn parse_query_buffer_limit(text: &str) -> Result<usize, ConfigError> {
    parse_bounded_memory(text, 1024 * 1024)
}

/// The output-limit classes Redis names in `client-output-buffer-limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitClass {
    /// Clients without subscriptions.
    Normal,
    /// Replicas; Herald has none, but keeps the value so configs round-trip.
    Replica,
    /// Subscribed clients.
    Pubsub,
}

/// Parses `<class> <hard> <soft> <seconds> [...]` (class: normal, replica/slave, pubsub).
pub fn parse_output_limits(text: &str) -> Result<Vec<(LimitClass, OutputLimit)>, ConfigError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err(ConfigError::BadLimitArity);
    }
    words
        .chunks(4)
        .map(|chunk| {
            let class = match chunk[0].to_ascii_lowercase().as_str() {
                "normal" => LimitClass::Normal,
                "replica" | "slave" => LimitClass::Replica,
                "pubsub" => LimitClass::Pubsub,
                _ => return Err(ConfigError::BadClientClass),
            };
            let limit = OutputLimit {
                hard_bytes: parse_memory(chunk[1])?,
                soft_bytes: parse_memory(chunk[2])?,
                soft_seconds: chunk[3].parse().map_err(|_| ConfigError::BadInteger)?,
            };
            Ok((class, limit))
        })
        .collect()
}

/// Start-up configuration, from flags and/or a TOML file (keys as the flag names).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to listen on.
    pub bind: Vec<IpAddr>,
    /// TCP port; 0 picks a free one (tests).
    pub port: u16,
    /// Password of the default user; `None` means no authentication.
    pub requirepass: Option<String>,
    /// Most clients connected at once.
    pub maxclients: usize,
    /// Largest bulk string a client may send (`proto-max-bulk-len`), e.g. `512mb`.
    pub proto_max_bulk_len: String,
    /// Most unparsed input buffered per client (`client-query-buffer-limit`), e.g. `1gb`.
    pub client_query_buffer_limit: String,
    /// Output limits per class, Redis syntax, e.g. `pubsub 32mb 8mb 60`.
    pub client_output_buffer_limit: String,
    /// Log every write to the append-only file and load it at start (`yes`/`no` or a
    /// TOML boolean).
    #[serde(deserialize_with = "yes_or_no")]
    pub appendonly: bool,
    /// Directory of the append-only file.
    pub dir: PathBuf,
    /// Name of the append-only file inside `dir`.
    pub appendfilename: String,
    /// `always`, `everysec` or `no`.
    pub appendfsync: String,
    /// Load a file whose last record was cut short by a crash, dropping that record.
    #[serde(deserialize_with = "yes_or_no")]
    pub aof_load_truncated: bool,
    /// Rewrite automatically when the file grew by this many percent since the last
    /// rewrite (0 disables).
    pub auto_aof_rewrite_percentage: u64,
    /// ... and is at least this big, e.g. `64mb`.
    pub auto_aof_rewrite_min_size: String,
    /// Worker threads of the `herald` binary's runtime; `None`,
    /// [`default_worker_threads`]. Read by the binary, which builds the runtime:
    /// [`crate::Server`] runs on whatever runtime its embedder built.
    pub threads: Option<usize>,
}

/// Most worker threads `threads` may ask for.
pub const MAX_THREADS: usize = 1024;

/// Worker threads when `threads` is not set: one per CPU the process may run on, but
/// one, and at least one. The CPU left over is for the kernel's network work and the
/// clients. Measured on the 2-core reference machine, clients on the same box (as
/// every benchmark there): one worker against two delivered 1.42x as much in saturated
/// fan-out 2 -> 20 at 0.60x the CPU per delivery (two workers and the load generator
/// are three busy threads on two cores; tokio's workers then wake and steal from each
/// other across cores), 1.33x in 1 -> 200, 1.2x pipelined PUBLISH, 0.82x the CPU at a
/// fixed rate (`docs/PERFORMANCE.md`). Where the clients run elsewhere and one core is
/// not enough, `threads` says how many.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cpus| cpus.get())
        .saturating_sub(1)
        .max(1)
}

/// Reads Redis's `yes`/`no` (or a TOML boolean).
fn yes_or_no<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(deserializer)? {
        Flag::Bool(value) => Ok(value),
        Flag::Text(text) => parse_yes_no(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses Redis's boolean syntax, `yes` or `no` (any case).
pub fn parse_yes_no(text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError::BadYesNo),
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: vec![IpAddr::from([127, 0, 0, 1])],
            port: DEFAULT_PORT,
            requirepass: None,
            maxclients: DEFAULT_MAXCLIENTS,
            proto_max_bulk_len: PROTO_MAX_BULK_LEN_BYTES.to_string(),
            client_query_buffer_limit: DEFAULT_QUERY_BUFFER_LIMIT_BYTES.to_string(),
            client_output_buffer_limit: "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60"
                .to_owned(),
            appendonly: false,
            dir: PathBuf::from("."),
            appendfilename: "appendonly.aof".to_owned(),
            appendfsync: "everysec".to_owned(),
            aof_load_truncated: true,
            auto_aof_rewrite_percentage: crate::persistence::DEFAULT_AUTO_REWRITE_PERCENTAGE,
            auto_aof_rewrite_min_size: "64mb".to_owned(),
            threads: None,
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file whose keys are the flag names (`port = 6380`, `requirepass = "x"`).
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::File(format!("cannot read {}: {err}", path.display())))?;
        toml::from_str(&text)
            .map_err(|err| ConfigError::File(format!("invalid config {}: {err}", path.display())))
    }

    /// Checks every value and builds the run-time configuration.
    pub fn validate(&self) -> Result<RuntimeConfig, ConfigError> {
        let runtime = RuntimeConfig::default();
        runtime.set_requirepass(self.requirepass.clone());
        runtime
            .set_maxclients(self.maxclients as u64)
            .map_err(ConfigError::of("maxclients"))?;
        runtime
            .set_proto_max_bulk_len(&self.proto_max_bulk_len)
            .map_err(ConfigError::of("proto-max-bulk-len"))?;
        runtime
            .set_query_buffer_limit(&self.client_query_buffer_limit)
            .map_err(ConfigError::of("client-query-buffer-limit"))?;
        runtime
            .set_output_limits(&self.client_output_buffer_limit)
            .map_err(ConfigError::of("client-output-buffer-limit"))?;
        self.aof_config()?;
        if let Some(threads) = self.threads {
            if !(1..=MAX_THREADS).contains(&threads) {
                return Err(ConfigError::of("threads")(ConfigError::OutOfRange {
                    min: 1,
                    max: MAX_THREADS as u64,
                }));
            }
        }
        Ok(runtime)
    }

    /// Where and how to keep the append-only file (kept even while `appendonly` is off,
    /// for CONFIG SET appendonly yes).
    pub fn aof_config(&self) -> Result<AofConfig, ConfigError> {
        let fsync: FsyncPolicy = self
            .appendfsync
            .parse()
            .map_err(|_| ConfigError::BadFsync(self.appendfsync.clone()))?;
        if self.appendfilename.is_empty()
            || self.appendfilename.contains('/')
            || self.appendfilename == "."
            || self.appendfilename == ".."
        {
            return Err(ConfigError::BadFileName(self.appendfilename.clone()));
        }
        Ok(AofConfig {
            settings: AofSettings {
                dir: self.dir.clone(),
                file_name: self.appendfilename.clone(),
                fsync,
                load_truncated: self.aof_load_truncated,
            },
            auto_rewrite_percentage: self.auto_aof_rewrite_percentage,
            auto_rewrite_min_size: parse_memory(&self.auto_aof_rewrite_min_size)?,
        })
    }
}

/// The parameters that may change while the server runs. Atomics and short-lived
/// `parking_lot` locks: every connection reads some of them on every request.
#[derive(Debug)]
pub struct RuntimeConfig {
    requirepass: RwLock<Option<String>>,
    /// Mirrors `requirepass.is_some()`: read on every request, so kept lock-free.
    auth_required: AtomicBool,
    maxclients: AtomicUsize,
    proto_max_bulk_len: AtomicUsize,
    query_buffer_limit: AtomicUsize,
    output_limits: Arc<OutputLimits>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            requirepass: RwLock::new(None),
            auth_required: AtomicBool::new(false),
            maxclients: AtomicUsize::new(DEFAULT_MAXCLIENTS),
            proto_max_bulk_len: AtomicUsize::new(PROTO_MAX_BULK_LEN_BYTES),
            query_buffer_limit: AtomicUsize::new(DEFAULT_QUERY_BUFFER_LIMIT_BYTES),
            output_limits: Arc::new(OutputLimits::default()),
        }
    }
}

impl RuntimeConfig {
    /// The default user's password, if authentication is on.
    pub fn requirepass(&self) -> Option<String> {
        self.requirepass.read().clone()
    }

    /// True when clients must authenticate.
    pub fn auth_required(&self) -> bool {
        self.auth_required.load(Ordering::Relaxed)
    }

    /// Sets or clears (`None` or empty) the password.
    pub fn set_requirepass(&self, password: Option<String>) {
        let password = password.filter(|p| !p.is_empty());
        let mut current = self.requirepass.write();
        self.auth_required
            .store(password.is_some(), Ordering::Relaxed);
        *current = password;
    }

    /// Most clients at once.
    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// Sets `maxclients` (1 ..= 1 000 000).
    pub fn set_maxclients(&self, value: u64) -> Result<(), ConfigError> {
        if !(1..=1_000_000).contains(&value) {
            return Err(ConfigError::OutOfRange {
                min: 1,
                max: 1_000_000,
            });
        }
        self.maxclients.store(value as usize, Ordering::Relaxed);
        Ok(())
    }

    /// The request parser's limits now in force.
    pub fn request_limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.proto_max_bulk_len.load(Ordering::Relaxed),
            max_multibulk_len: PROTO_MAX_MULTIBULK_LEN,
            max_inline_len: PROTO_INLINE_MAX_BYTES,
        }
    }

    /// `proto-max-bulk-len` in bytes.
    pub fn proto_max_bulk_len(&self) -> usize {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    /// Sets `proto-max-bulk-len`; see [`parse_proto_max_bulk_len`].
    pub fn set_proto_max_bulk_len(&self, text: &str) -> Result<(), ConfigError> {
        let value = parse_proto_max_bulk_len(text)?;
        self.proto_max_bulk_len.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// `client-query-buffer-limit` in bytes.
    pub fn query_buffer_limit(&self) -> usize {
        self.query_buffer_limit.load(Ordering::Relaxed)
    }

    /// Sets `client-query-buffer-limit`; see [`parse_query_buffer_limit`].
    pub fn set_query_buffer_limit(&self, text: &str) -> Result<(), ConfigError> {
        let value = parse_query_buffer_limit(text)?;
        self.query_buffer_limit.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// The output limits shared with every outbox.
    pub fn output_limits(&self) -> &Arc<OutputLimits> {
        &self.output_limits
    }

    /// Applies a `client-output-buffer-limit` value; classes not named keep their limit.
    pub fn set_output_limits(&self, text: &str) -> Result<(), ConfigError> {
        for (class, limit) in parse_output_limits(text)? {
            match class {
                LimitClass::Normal => self.output_limits.set(ClientClass::Normal, limit),
                LimitClass::Pubsub => self.output_limits.set(ClientClass::Pubsub, limit),
                LimitClass::Replica => self.output_limits.set(ClientClass::Replica, limit),
            }
        }
        Ok(())
    }

    /// `client-output-buffer-limit` as CONFIG GET shows it (bytes, Redis's order and names).
    pub fn output_limits_text(&self) -> String {
        let format = |name: &str, limit: OutputLimit| {
            format!(
                "{name} {} {} {}",
                limit.hard_bytes, limit.soft_bytes, limit.soft_seconds
            )
        };
        [
            format("normal", self.output_limits.get(ClientClass::Normal)),
            format("slave", self.output_limits.get(ClientClass::Replica)),
            format("pubsub", self.output_limits.get(ClientClass::Pubsub)),
        ]
        .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_like_redis() {
        assert_eq!(parse_memory("100"), Ok(100));
        assert_eq!(parse_memory("1k"), Ok(1000));
        assert_eq!(parse_memory("1KB"), Ok(1024));
        assert_eq!(parse_memory("32mb"), Ok(32 * 1024 * 1024));
        assert_eq!(parse_memory("2g"), Ok(2_000_000_000));
        assert_eq!(parse_memory("mb"), Err(ConfigError::BadMemory));
        assert_eq!(parse_memory("-1"), Err(ConfigError::BadMemory));
        assert_eq!(parse_memory("12xb"), Err(ConfigError::BadMemory));
        assert_eq!(
            parse_memory("99999999999999999999gb"),
            Err(ConfigError::BadMemory)
        );
    }

    #[test]
    fn output_limit_classes() {
        let parsed = parse_output_limits("pubsub 32mb 8mb 60 normal 0 0 0").expect("valid");
        assert_eq!(parsed[0].0, LimitClass::Pubsub);
        assert_eq!(parsed[0].1.hard_bytes, 32 * 1024 * 1024);
        assert_eq!(parsed[1].0, LimitClass::Normal);
        assert_eq!(
            parse_output_limits("pubsub 1 2"),
            Err(ConfigError::BadLimitArity)
        );
        assert_eq!(
            parse_output_limits("bogus 1 2 3"),
            Err(ConfigError::BadClientClass)
        );
        assert_eq!(
            parse_output_limits("pubsub 1 2 x"),
            Err(ConfigError::BadInteger)
        );
    }

    #[test]
    fn defaults_validate_and_round_trip() {
        let runtime = ServerConfig::default()
            .validate()
            .expect("defaults are valid");
        assert_eq!(
            runtime.output_limits_text(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        assert_eq!(runtime.proto_max_bulk_len(), 512 * 1024 * 1024);
        assert!(!runtime.auth_required());
    }

    #[test]
    fn toml_keys_are_flag_names() {
        let config: ServerConfig = toml::from_str(
            "port = 7000\nrequirepass = \"s3cret\"\nclient-output-buffer-limit = \"pubsub 1mb 0 0\"\n",
        )
        .expect("valid toml");
        assert_eq!(config.port, 7000);
        assert_eq!(config.requirepass.as_deref(), Some("s3cret"));
        let runtime = config.validate().expect("valid");
        assert_eq!(
            runtime.output_limits().get(ClientClass::Pubsub).hard_bytes,
            1024 * 1024
        );
        assert!(toml::from_str::<ServerConfig>("nonsense = 1").is_err());
    }

    #[test]
    fn ranges_are_enforced() {
        let runtime = RuntimeConfig::default();
        assert!(runtime.set_proto_max_bulk_len("1k").is_err());
        assert!(runtime.set_query_buffer_limit("10").is_err());
        assert!(runtime.set_maxclients(0).is_err());
        runtime.set_requirepass(Some(String::new()));
        assert!(!runtime.auth_required());
    }
}
