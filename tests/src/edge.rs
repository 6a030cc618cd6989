//! The Worker under `wrangler dev --local`, fully offline, in front of a given origin URL.
//!
//! The Worker is built once by `scripts/test.sh`; each edge runs it from a copy of the
//! repository's `wrangler.toml` without its `[build]` table (with one, wrangler rebuilds at
//! every start) and with its own state directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{Managed, free_port};
use crate::{env_or, repo_root};

/// The default rate limits of a test edge: far above what any test sends, so only the tests
/// about limits (which set their own) ever see a 429. Each `(var, value)` may be overridden.
pub const GENEROUS_LIMITS: &[(&str, &str)] = &[
    ("RATE_LIMIT_AUTH_IP", "100000/60"),
    ("RATE_LIMIT_LOGIN_IDENTITY", "100000/60"),
    ("RATE_LIMIT_SHARE_IP", "100000/60"),
    ("RATE_LIMIT_IDENTITY", "100000/60"),
    ("RATE_LIMIT_HEALTH_IP", "100000/60"),
];

/// How a test edge is started.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// The origin's base URL (`ORIGIN_URL`).
    pub origin_url: String,
    /// Worker bindings passed with `--var NAME:VALUE`; later entries win over earlier ones.
    pub vars: Vec<(String, String)>,
}

impl EdgeSettings {
    /// An edge in front of `origin_url` with [`GENEROUS_LIMITS`].
    pub fn new(origin_url: &str) -> Self {
        Self {
            origin_url: origin_url.to_owned(),
            vars: GENEROUS_LIMITS
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// Sets a binding, replacing an earlier value of the same name.
    pub fn var(&mut self, name: &str, value: &str) -> &mut Self {
        self.vars.retain(|(existing, _)| existing != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running `wrangler dev`.
#[derive(Debug)]
pub struct Edge {
    process: Managed,
    url: String,
    _dir: TempDir,
}

fn worker_main() -> PathBuf {
    let main = PathBuf::from(env_or("OXVAULT_WORKER_MAIN", || {
        repo_root()
            .join("edge/build/worker/shim.mjs")
            .display()
            .to_string()
    }));
    assert!(
        main.exists(),
        "the Worker is not built ({} missing): run scripts/test.sh, or worker-build --release in edge/",
        main.display()
    );
    main
}

fn wrangler() -> String {
    let wrangler = env_or("OXVAULT_WRANGLER", || {
        repo_root()
            .join("node_modules/.bin/wrangler")
            .display()
            .to_string()
    });
    assert!(
        std::path::Path::new(&wrangler).exists(),
        "wrangler is not installed ({wrangler} missing): run `npm ci` (scripts/test.sh does)"
    );
    wrangler
}

/// The repository's wrangler.toml with `main` made absolute and the `[build]` table removed.
fn test_config() -> String {
    let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).expect("wrangler.toml");
    let mut out = String::new();
    let mut in_build = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_build = trimmed.starts_with("[build]");
        }
        if in_build {
            continue;
        }
        if trimmed.starts_with("main ") || trimmed.starts_with("main=") {
            out.push_str(&format!(
                "main = {:?}\n",
                worker_main().display().to_string()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Edge {
    /// Starts `wrangler dev` in front of `origin_url` with the default test bindings.
    pub fn start(origin_url: &str) -> Self {
        Self::start_with(&EdgeSettings::new(origin_url))
    }

    /// Starts `wrangler dev` with `settings`; returns once it answers.
    pub fn start_with(settings: &EdgeSettings) -> Self {
        let dir = tempfile::tempdir().expect("edge dir");
        let config = dir.path().join("wrangler.toml");
        std::fs::write(&config, test_config()).expect("test wrangler.toml");
        // A port from `free_port` can be taken by another test between the pick and wrangler's
        // bind; wrangler then exits with "Address already in use" (or, when the port it lost is
        // one of workerd's own, "The Workers runtime failed to start") and new ports are tried.
        let mut attempt = 0;
        let (process, url) = loop {
            attempt += 1;
            let port = free_port();
            let mut command = Command::new(wrangler());
            command
                .current_dir(dir.path())
                .args(["dev", "--local", "--ip", "127.0.0.1"])
                .args(["--port", &port.to_string()])
                .args(["--inspector-port", &free_port().to_string()])
                .arg("--config")
                .arg(&config)
                .arg("--persist-to")
                .arg(dir.path().join("state"))
                .args([
                    "--show-interactive-dev-session=false",
                    "--log-level",
                    "warn",
                ])
                .arg("--var")
                .arg(format!("ORIGIN_URL:{}", settings.origin_url))
                // Offline: no Cloudflare look-ups, metrics, error reports or update checks.
                .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
                .env("WRANGLER_SEND_METRICS", "false")
                .env("WRANGLER_SEND_ERROR_REPORTS", "false")
                .env("WRANGLER_HIDE_BANNER", "true")
                .env("CI", "true");
            for (name, value) in &settings.vars {
                command.arg("--var").arg(format!("{name}:{value}"));
            }
            let (mut process, _lines) =
                Managed::spawn("wrangler dev", command, &dir.path().join("wrangler.log"));
            let url = format!("http://127.0.0.1:{port}");
            match wait_until_answering(&url, &mut process) {
                Ok(()) => break (process, url),
                Err(log) if attempt < 4 && is_port_race(&log) => continue,
                Err(log) => panic!("wrangler dev did not start:\n{log}"),
            }
        };
        Self {
            process,
            url,
            _dir: dir,
        }
    }

    /// The edge's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything wrangler printed so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The file wrangler's output goes to.
    pub fn log_path(&self) -> &std::path::Path {
        self.process.log_path()
    }
}

/// Whether wrangler's exit looks like a port another process took meanwhile.
fn is_port_race(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("The Workers runtime failed to start")
}

/// Polls until the Worker answers any HTTP response on a path outside `/v1` (so the origin's
/// state does not matter).
fn wait_until_answering(url: &str, process: &mut Managed) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let probe = format!("{url}/__oxvault_ready");
    while Instant::now() < deadline {
        if let Some(status) = process.try_status() {
            // Let the output threads drain the last lines into the log first.
            std::thread::sleep(Duration::from_millis(300));
            return Err(format!("exited with {status}:\n{}", process.log_text()));
        }
        if let Ok(stream) = std::net::TcpStream::connect_timeout(
            &url.trim_start_matches("http://")
                .parse()
                .expect("socket address"),
            Duration::from_millis(200),
        ) {
            drop(stream);
            // Something answered; make sure it is our Worker (its 404 names the API's place)
            // and not whoever else holds the port, such as another wrangler's inspector: ours
            // then exits with "Address already in use" and new ports are tried.
            if answers_as_edge(&probe) {
                std::thread::sleep(Duration::from_millis(300));
                if process.try_status().is_none() {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "wrangler dev did not answer within 90 s:\n{}",
        process.log_text()
    );
}

/// What the edge's own 404 says, and nothing else on the machine does.
const EDGE_NOT_FOUND: &str = "the API lives under /v1/";

/// Whether a blocking GET of `url` is answered by the edge (its 404 text), without pulling a
/// blocking HTTP client into the crate. Reads only until the text shows up: a server need
/// not close the connection when asked to, and waiting for that would cost seconds per start.
fn answers_as_edge(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some((host, path)) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let asked = stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| {
            write!(
                stream,
                "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )
        });
    if asked.is_err() {
        return false;
    }
    let (mut response, mut chunk) = (Vec::new(), [0u8; 4096]);
    while response.len() < 64 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(read) => response.extend_from_slice(&chunk[..read]),
        }
        if String::from_utf8_lossy(&response).contains(EDGE_NOT_FOUND) {
            return true;
        }
    }
    false
}
