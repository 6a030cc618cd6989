//! A SoftHSM2 token directory of the test's own, so tests never share HSM state.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::env_or;

/// The label of every test token (each lives in its own directory).
pub const TOKEN_LABEL: &str = "oxvault-test";
/// The user PIN of every test token.
pub const PIN: &str = "test-pin-1234";

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
