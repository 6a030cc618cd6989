//! A PostgreSQL server of a test's own, for tests that restart or stop the database: `initdb`
//! into a temporary directory, `pg_ctl` to start, restart and stop it. The machine's shared
//! server is never touched.
//!
//! The server binaries come from `OXVAULT_PG_BIN_DIR`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian), else `PATH`. `initdb` refuses to run as
//! root, so as root every server command runs as the `postgres` user (`runuser`).

use std::path::PathBuf;
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::env_or;
use crate::process::{free_port, read_log};

/// A running private cluster on 127.0.0.1, trust auth, user `postgres`; stopped (immediate
/// mode) and deleted when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: TempDir,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// Initialises and starts a cluster (a few seconds). Blocking: call it from
    /// `spawn_blocking` in async tests.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("cluster dir");
        if running_as_root() {
            run_checked(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let postgres = Self {
            port: free_port(),
            bin: bin_dir(),
            dir,
        };
        postgres.run(
            "initdb",
            &[
                "-D",
                &postgres.data().display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        postgres.pg_ctl(&["start"]);
        postgres
    }

    /// The admin URL, for [`crate::StackBuilder::database_server`].
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server as an operator would (`pg_ctl restart -m fast`: open connections
    /// are cut); returns when it accepts connections again.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast"]);
    }

    /// Everything the server logged.
    pub fn log_text(&self) -> String {
        read_log(&self.log())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `pg_ctl <action>` with this cluster's data directory, port and socket directory,
    /// waiting for the action to finish.
    fn pg_ctl(&self, action: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data(), self.log());
        let mut args = vec![
            "-D",
            data.to_str().expect("UTF-8 path"),
            "-l",
            log.to_str().expect("UTF-8 path"),
            "-o",
            &options,
            "-w",
            "-t",
            "30",
        ];
        args.extend_from_slice(action);
        let out = self.command("pg_ctl", &args).output().expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {action:?} failed: {}\nserver log:\n{}",
            describe(&out),
            self.log_text()
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        run_checked(&mut self.command(program, args));
    }

    /// `program` from the server binaries, as the `postgres` user when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(self.dir.path());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or_default(),
                    "-m",
                    "immediate",
                    "stop",
                ],
            )
            .output();
    }
}

/// A PostgreSQL program (`pg_dump`, `pg_restore`, `initdb`, ...) from the binaries described
/// in the module docs.
pub fn pg_tool(program: &str) -> PathBuf {
    bin_dir().join(program)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn bin_dir() -> PathBuf {
    let found = env_or("OXVAULT_PG_BIN_DIR", || {
        newest_debian_bin_dir()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default()
    });
    if found.is_empty() {
        PathBuf::new() // bare program names: found on PATH
    } else {
        PathBuf::from(found)
    }
}

/// The bin directory of the newest PostgreSQL under `/usr/lib/postgresql` that has `initdb`.
fn newest_debian_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn run_checked(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?} could not run: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        describe(&out)
    );
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
