//! The `oxvault-origin` binary as a child process: `migrate`, then `serve` on a port it picks.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::env_or;
use crate::process::Managed;
use crate::softhsm::{PIN, SoftHsmToken, TOKEN_LABEL};

/// How the origin is started; defaults describe a healthy origin.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    pub database_url: String,
    pub softhsm_conf: PathBuf,
    pub pin: String,
    /// Run `oxvault-origin migrate` first (off when the database is meant to be down).
    pub migrate: bool,
    /// More environment for `serve` (e.g. Google sign-in settings).
    pub extra_env: Vec<(String, String)>,
}

impl OriginSettings {
    /// A healthy origin on `database_url` with the given token.
    pub fn new(database_url: &str, token: &SoftHsmToken) -> Self {
        Self {
            database_url: database_url.to_owned(),
            softhsm_conf: token.conf(),
            pin: PIN.to_owned(),
            migrate: true,
            // The origin's own coarse limit would otherwise trip in tests that send bursts from
            // one address; the test about it sets its own.
            extra_env: vec![(
                "OXVAULT_ORIGIN_RATE_LIMIT".to_owned(),
                "100000/60".to_owned(),
            )],
        }
    }
}

/// A running origin process.
#[derive(Debug)]
pub struct Origin {
    process: Managed,
    url: String,
    /// Where `/metrics` is served (a listener of its own).
    metrics_url: String,
    /// What it was started with, for [`Origin::subcommand`].
    settings: OriginSettings,
    logs: TempDir,
    /// How many times [`Origin::restart`] ran (each run logs to a file of its own).
    restarts: u32,
}

impl Drop for Origin {
    /// A failing test keeps the origin's logs, which would otherwise go with their temporary
    /// directory: in `target/e2e-artifacts/origin-logs/<pid>/`, and says where in its output.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let kept = crate::repo_root()
            .join("target/e2e-artifacts/origin-logs")
            .join(self.process.pid().to_string());
        if let Err(err) = std::fs::create_dir_all(&kept) {
            eprintln!("the origin's logs could not be kept: {err}");
            return;
        }
        for entry in std::fs::read_dir(self.logs.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Err(err) = std::fs::copy(entry.path(), kept.join(entry.file_name())) {
                eprintln!("{} could not be kept: {err}", entry.path().display());
            }
        }
        eprintln!("the origin's logs are kept in {}", kept.display());
    }
}

fn binary() -> String {
    env_or("OXVAULT_ORIGIN_BIN", || {
        crate::profile_dir()
            .join("oxvault-origin")
            .display()
            .to_string()
    })
}

fn command(settings: &OriginSettings, subcommand: &str) -> Command {
    let binary = binary();
    assert!(
        std::path::Path::new(&binary).exists(),
        "the origin binary {binary} does not exist: run `cargo build -p oxvault-origin` (scripts/test.sh does)"
    );
    let mut command = Command::new(binary);
    command
        .arg(subcommand)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &settings.database_url)
        .env("OXVAULT_LISTEN_ADDR", "127.0.0.1:0")
        .env("OXVAULT_METRICS_ADDR", "127.0.0.1:0")
        .env("OXVAULT_HSM_MODULE", SoftHsmToken::module())
        .env("OXVAULT_HSM_TOKEN_LABEL", TOKEN_LABEL)
        .env("OXVAULT_HSM_PIN", &settings.pin)
        .env("OXVAULT_DB_ACQUIRE_TIMEOUT_SECS", "2")
        .env("OXVAULT_SHUTDOWN_GRACE_SECS", "5")
        .env("OXVAULT_LOG", "info")
        .env("SOFTHSM2_CONF", &settings.softhsm_conf)
        .envs(settings.extra_env.iter().map(|(k, v)| (k, v)));
    command
}

impl Origin {
    /// Runs `migrate` (when asked), then starts `serve` and waits for its listening line.
    pub fn start(settings: &OriginSettings) -> Self {
        if settings.migrate {
            let out = command(settings, "migrate").output().expect("run migrate");
            assert!(
                out.status.success(),
                "oxvault-origin migrate failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let logs = tempfile::tempdir().expect("log dir");
        let (mut process, lines) = Managed::spawn(
            "oxvault-origin",
            command(settings, "serve"),
            &logs.path().join("origin.log"),
        );
        let (addr, metrics_addr) = wait_for_listening(&lines, &mut process);
        Self {
            process,
            url: format!("http://{addr}"),
            metrics_url: format!("http://{metrics_addr}/metrics"),
            settings: settings.clone(),
            logs,
            restarts: 0,
        }
    }

    /// Starts `serve` again on the same address, so an edge pointed at it finds it again;
    /// returns once it listens. A process still running is killed first (SIGKILL: nothing is
    /// flushed, as in a crash). Blocking.
    pub fn restart(&mut self) {
        self.process.kill();
        self.restarts += 1;
        let addr = self.url.trim_start_matches("http://").to_owned();
        let mut command = command(&self.settings, "serve");
        command.env("OXVAULT_LISTEN_ADDR", &addr);
        let log = self
            .logs
            .path()
            .join(format!("origin-restart-{}.log", self.restarts));
        let (mut process, lines) = Managed::spawn("oxvault-origin", command, &log);
        let (listening, metrics_addr) = wait_for_listening(&lines, &mut process);
        assert_eq!(listening, addr, "the restarted origin listens elsewhere");
        self.process = process;
        self.metrics_url = format!("http://{metrics_addr}/metrics");
    }

    /// Another `oxvault-origin` subcommand (e.g. `rotate-kek`) with the environment this
    /// origin runs with (same database, token and PIN), ready to run.
    pub fn subcommand(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut command = command(&self.settings, subcommand);
        command.args(args);
        command
    }

    /// The origin's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the origin's `/metrics` (on its metrics listener, not its API port).
    pub fn metrics_url(&self) -> &str {
        &self.metrics_url
    }

    /// The process id of the running `serve`.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The process, to signal or kill it.
    pub fn process(&mut self) -> &mut Managed {
        &mut self.process
    }

    /// Everything the origin logged so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The file the origin logs to.
    pub fn log_path(&self) -> &std::path::Path {
        self.process.log_path()
    }

    /// Whether the log contains `needle` within a few seconds.
    pub async fn logged(&self, needle: &str) -> bool {
        crate::process::log_shows(self.log_path(), needle).await
    }
}

/// Reads the origin's JSON log until it says where it listens: the API's address and the
/// metrics listener's (logged first).
fn wait_for_listening(
    lines: &std::sync::mpsc::Receiver<String>,
    process: &mut Managed,
) -> (String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut metrics = None;
    while std::time::Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let addr = event["addr"].as_str().map(str::to_owned);
                if event["message"] == "oxvault-origin metrics listening" {
                    metrics = addr;
                } else if event["message"] == "oxvault-origin listening"
                    && let Some(addr) = addr
                {
                    let metrics = metrics.expect("the metrics address is logged before the API's");
                    return (addr, metrics);
                }
            }
            Err(_) => {
                if let Some(status) = process.try_status() {
                    panic!(
                        "{} exited with {status} before listening:\n{}",
                        process.name(),
                        process.log_text()
                    );
                }
            }
        }
    }
    panic!(
        "the origin did not start listening:\n{}",
        process.log_text()
    );
}
