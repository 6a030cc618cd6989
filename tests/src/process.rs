//! Child processes that die with the test, with their output kept in files for post-mortems.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running child process; killed (with its process group) when dropped.
#[derive(Debug)]
pub struct Managed {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Managed {
    /// Starts `command` in its own process group, copying its stdout and stderr line by line
    /// to `log` and to `lines` (so a caller can wait for a readiness line).
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> (Self, mpsc::Receiver<String>) {
        use std::os::unix::process::CommandExt;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name} ({command:?}): {err}"));
        let (tx, rx) = mpsc::channel();
        let file = File::create(log).expect("log file");
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            let mut file = file.try_clone().expect("log file handle");
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = writeln!(file, "{line}");
                    let _ = tx.send(line);
                }
            });
        }
        (
            Self {
                name: name.to_owned(),
                child: Some(child),
                log: log.to_owned(),
            },
            rx,
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Whether the process has exited; its status if so.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends a signal (e.g. `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// The output so far, for failure messages.
    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// The file the output goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the whole process group (wrangler starts workerd as a child).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A log file's text so far (empty when it cannot be read).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Whether the log at `path` contains `needle` within a few seconds (log lines reach the file
/// a moment after the response that follows them reaches the client).
pub async fn log_shows(path: &Path, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if read_log(path).contains(needle) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 for a child to bind, never one handed out before by this
/// process.
///
/// Picked below the kernel's ephemeral range: a port the kernel chose (`bind` to port 0) and
/// released could be given again at once to any socket bound to port 0, such as workerd's
/// own, and a child then fails to bind it or, worse, a readiness probe meets another test's
/// server there. Ports below the range are never chosen by the kernel.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOWEST: u16 = 20_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let ceiling = ephemeral_start().max(LOWEST + 1_000);
    let span = ceiling - LOWEST;
    // Start each process at its own place, so test binaries run one after the other (or two
    // runs side by side) seldom walk the same ports.
    let _ = NEXT.compare_exchange(
        0,
        u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0) + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = LOWEST + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOWEST} and {ceiling}");
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}
