//! A SoftHSM2 token directory of the test's own, so tests never share HSM state.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::env_or;

/// The label of every test token (each lives in its own directory).
pub const TOKEN_LABEL: &str = "oxvault-test";
/// The user PIN of every test token.
pub const PIN: &str = "test-pin-1234";

/// Locks held on a token's files by [`SoftHsmToken::wedge`]; dropping it releases them (the
/// holding process is killed).
#[derive(Debug)]
pub struct Wedge {
    child: std::process::Child,
}

impl Drop for Wedge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SoftHSM2 configuration pointing at a private token directory.
#[derive(Debug)]
pub struct SoftHsmToken {
    dir: TempDir,
}

impl SoftHsmToken {
    /// A configuration whose token directory is empty: the HSM has no token yet.
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tokens")).expect("token dir");
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        Self { dir }
    }

    /// A configuration with an initialised token labelled [`TOKEN_LABEL`].
    pub fn initialized() -> Self {
        let token = Self::empty();
        token.init();
        token
    }

    /// Initialises the token (e.g. later, to show the origin recovers).
    pub fn init(&self) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", self.conf())
            .args([
                "--init-token",
                "--free",
                "--label",
                TOKEN_LABEL,
                "--pin",
                PIN,
                "--so-pin",
                "test-so-pin-5678",
            ])
            .output()
            .expect("softhsm2-util must be on PATH (Debian package softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `SOFTHSM2_CONF` file for processes using this token.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// The directory of this token's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Takes the token's files away from under running processes (renames the token
    /// directory), as a removed or failed HSM would: SoftHSM2 checks an object's file on
    /// every use, so calls on keys already loaded fail from then on.
    pub fn take_away(&self) {
        std::fs::rename(self.tokens_dir(), self.away_dir()).expect("take the tokens away");
    }

    /// Wedges the token, as a hung HSM would: another process holds POSIX (fcntl) write locks
    /// on every file of the token directory, and SoftHSM2 waits for a lock on a token file in
    /// every call that touches an object. Calls hang until the returned guard is dropped.
    pub fn wedge(&self) -> Wedge {
        const HOLD_LOCKS: &str = r#"
import fcntl, os, sys
held = []
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        f = open(os.path.join(root, name), "r+")
        fcntl.lockf(f, fcntl.LOCK_EX)
        held.append(f)
print(len(held), flush=True)
sys.stdin.read()
"#;
        let mut child = Command::new("python3")
            .args(["-c", HOLD_LOCKS])
            .arg(self.tokens_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the lock holder");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the lock holder's stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read the lock holder's count");
        let held: usize = line.trim().parse().expect("the lock holder's count");
        assert!(held > 0, "the token has no files to lock");
        Wedge { child }
    }

    /// Puts the token's files back after [`SoftHsmToken::take_away`].
    pub fn bring_back(&self) {
        std::fs::rename(self.away_dir(), self.tokens_dir()).expect("bring the tokens back");
    }

    fn tokens_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    fn away_dir(&self) -> PathBuf {
        self.dir.path().join("tokens.away")
    }

    /// The PKCS#11 module to load.
    pub fn module() -> String {
        env_or("OXVAULT_HSM_MODULE", || {
            "/usr/lib/softhsm/libsofthsm2.so".to_owned()
        })
    }
}
