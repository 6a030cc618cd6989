//! The production HSM binding over PKCS#11: one logged-in connection to the token, holding
//! the key-encryption key ([`kek`]), the token-signing key pair ([`signing`]) and the audit
//! trail's MAC key ([`audit_key`]).
//!
//! Availability: the token may be absent at start, removed, or refuse the PIN. Calls then
//! answer [`CryptoError::Unavailable`] and the connection is re-made by itself on a later
//! call, no more often than [`RETRY_AFTER`] (and only every [`RETRY_AFTER_PIN`] after a PIN
//! error, so a misconfigured origin cannot lock a real HSM's PIN by retrying).
//!
//! Several origins share one token: keys are found by label. The token-signing key pair is
//! the one with the smallest `CKA_ID` (origins racing to create it converge on the same one);
//! the KEK that wraps is the one with the greatest `CKA_ID`, so a KEK made by `rotate-kek` takes
//! over, and older KEKs stay usable for unwrapping by id (see [`kek`]).

mod audit_key;
mod kek;
mod signing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand::TryRngCore;
use rand::rngs::OsRng;
use secrecy::ExposeSecret;

use super::CryptoError;
use crate::config::HsmConfig;

/// Wait this long after a failed connection before trying again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Wait this long after the token refused the PIN before trying it again.
pub const RETRY_AFTER_PIN: Duration = Duration::from_secs(300);

/// Length of the random `CKA_ID` given to keys this module creates.
const KEY_ID_LEN: usize = 16;

/// The HSM over a PKCS#11 module, reconnecting by itself when the token comes back.
/// Implements [`crate::crypto::KeyWrapper`] and [`crate::crypto::TokenSigner`].
pub struct Pkcs11Hsm {
    config: HsmConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Pkcs11Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Hsm")
            .field("module", &self.config.module)
            .field("token_label", &self.config.token_label)
            .field("kek_label", &self.config.kek_label)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    connection: Option<Arc<Connection>>,
    /// No connection attempt before this instant.
    quiet_until: Option<Instant>,
}

/// A logged-in token with its keys found: one PKCS#11 library initialisation.
struct Connection {
    ctx: Pkcs11,
    slot: Slot,
    /// Label of the KEKs, to list them again.
    kek_label: String,
    /// How old the KEK list may get before a wrap lists them again.
    kek_refresh: Duration,
    /// The KEKs under [`Connection::kek_label`], with their handles in this connection. Locked
    /// only for a lookup, or for a listing (a few PKCS#11 calls), so one thread lists while
    /// the others wait for its result rather than listing too.
    keks: Mutex<kek::KekSet>,
    signing: signing::SigningKey,
    /// The HMAC key of the audit trail: a session object copied from the token's key,
    /// owned by [`Connection::login`] (see [`audit_key::session_copy`]).
    audit_key: ObjectHandle,
    /// Keeps the login alive: PKCS#11 logs the user out when an application's last session on
    /// a token closes, so this one stays open for the connection's whole life.
    login: Mutex<Option<Session>>,
    /// Sessions not in use. Sessions are `Send` but not `Sync`: one thread uses one at a time.
    idle: Mutex<Vec<Session>>,
    broken: AtomicBool,
}

/// Why a connection could not be made.
enum ConnectError {
    /// The token refused the PIN: retried only after [`RETRY_AFTER_PIN`].
    Pin(CkError),
    /// Anything else: module, token, KEK; retried after [`RETRY_AFTER`].
    Other(String),
}

impl From<CkError> for ConnectError {
    fn from(err: CkError) -> Self {
        Self::Other(err.to_string())
    }
}

impl From<OpError> for ConnectError {
    fn from(err: OpError) -> Self {
        match err {
            OpError::Ck(err) => err.into(),
            OpError::Device(reason) => Self::Other(reason),
        }
    }
}

/// Why an operation on a session failed.
enum OpError {
    /// The module answered with an error code: bad input or a bad device, sorted out by
    /// [`is_data_error`].
    Ck(CkError),
    /// The module answered, but not the way a working token does (e.g. it no longer lists any
    /// KEK): treated like a device error.
    Device(String),
}

impl From<CkError> for OpError {
    fn from(err: CkError) -> Self {
        Self::Ck(err)
    }
}

impl Pkcs11Hsm {
    /// A wrapper for the token described by `config`. It connects on first use (see
    /// [`Pkcs11Hsm::connect_now`]), so the origin starts even while the HSM is down.
    pub fn new(config: HsmConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Connects (finding or creating the keys) now rather than on the first call, so that a
    /// misconfiguration shows in the log at start. Blocking.
    pub fn connect_now(&self) -> Result<(), CryptoError> {
        self.connection().map(drop)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the state consistent (every field is written
        // in one assignment), so a poisoned lock is safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn connection(&self) -> Result<Arc<Connection>, CryptoError> {
        let mut state = self.lock_state();
        if let Some(connection) = &state.connection {
            if !connection.broken.load(Ordering::Acquire) {
                return Ok(Arc::clone(connection));
            }
            state.connection = None;
        }
        if state
            .quiet_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(CryptoError::Unavailable);
        }
        // Connecting under the lock is deliberate: one thread reconnects, the others wait for
        // its result instead of initialising the library concurrently.
        match Connection::open(&self.config) {
            Ok(connection) => {
                tracing::info!(
                    token = %self.config.token_label,
                    kek = %self.config.kek_label,
                    "connected to the HSM"
                );
                let connection = Arc::new(connection);
                state.connection = Some(Arc::clone(&connection));
                state.quiet_until = None;
                Ok(connection)
            }
            Err(ConnectError::Pin(err)) => {
                tracing::error!(error = %err, retry_in_secs = RETRY_AFTER_PIN.as_secs(), "the HSM refused the PIN");
                state.quiet_until = Some(Instant::now() + RETRY_AFTER_PIN);
                Err(CryptoError::Unavailable)
            }
            Err(ConnectError::Other(reason)) => {
                tracing::warn!(reason = %reason, "the HSM is unavailable");
                state.quiet_until = Some(Instant::now() + RETRY_AFTER);
                Err(CryptoError::Unavailable)
            }
        }
    }

    /// Runs `op` on a session of a live connection, sorting its failure into "the data is
    /// bad" (the session is fine) and "the device is bad" (drop the connection, reconnect
    /// later).
    fn with_session<T>(
        &self,
        op: impl FnOnce(&Session, &Connection) -> Result<T, OpError>,
    ) -> Result<T, CryptoError> {
        let connection = self.connection()?;
        let session = match connection.checkout() {
            Ok(session) => session,
            Err(err) => return Err(connection.fail(&err)),
        };
        match op(&session, &connection) {
            Ok(value) => {
                connection.checkin(session);
                Ok(value)
            }
            Err(OpError::Ck(err)) if is_data_error(&err, &session) => {
                connection.checkin(session);
                Err(CryptoError::Integrity)
            }
            Err(OpError::Ck(err)) => {
                drop(session);
                Err(connection.fail(&err))
            }
            Err(OpError::Device(reason)) => {
                drop(session);
                Err(connection.fail(&reason))
            }
        }
    }
}

impl Connection {
    fn open(config: &HsmConfig) -> Result<Self, ConnectError> {
        let ctx = Pkcs11::new(&config.module).map_err(|err| {
            ConnectError::Other(format!("cannot load {}: {err}", config.module.display()))
        })?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
        match Self::log_in(&ctx, config) {
            Ok(connection) => Ok(connection),
            Err(err) => {
                if let Err(fin) = ctx.finalize() {
                    tracing::warn!(error = %fin, "finalizing the PKCS#11 library failed");
                }
                Err(err)
            }
        }
    }

    fn log_in(ctx: &Pkcs11, config: &HsmConfig) -> Result<Self, ConnectError> {
        let slot = find_slot(ctx, &config.token_label)?;
        let login = ctx.open_rw_session(slot)?;
        let pin = AuthPin::from(config.pin.expose_secret());
        match login.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(
                err @ CkError::Pkcs11(
                    RvError::PinIncorrect
                    | RvError::PinLocked
                    | RvError::PinInvalid
                    | RvError::PinLenRange
                    | RvError::PinExpired,
                    _,
                ),
            ) => return Err(ConnectError::Pin(err)),
            Err(err) => return Err(err.into()),
        }
        let keks = kek::find_or_create_kek(&login, &config.kek_label)?;
        let signing = signing::find_or_create_signing_key(&login, &config.signing_key_label)?;
        let audit_key = audit_key::session_copy(
            &login,
            audit_key::find_or_create_audit_key(&login, &config.audit_key_label)?,
        );
        Ok(Self {
            ctx: ctx.clone(),
            slot,
            kek_label: config.kek_label.clone(),
            kek_refresh: config.kek_refresh,
            keks: Mutex::new(keks),
            signing,
            audit_key,
            login: Mutex::new(Some(login)),
            idle: Mutex::new(Vec::new()),
            broken: AtomicBool::new(false),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Session>> {
        // Pushing or popping a session cannot leave the vector half-updated.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checkout(&self) -> Result<Session, CkError> {
        let reused = self.idle().pop();
        match reused {
            Some(session) => Ok(session),
            None => self.ctx.open_rw_session(self.slot),
        }
    }

    fn checkin(&self, session: Session) {
        self.idle().push(session);
    }

    /// Marks the connection broken after a device-level error, so the next call reconnects.
    fn fail(&self, err: &dyn std::fmt::Display) -> CryptoError {
        tracing::warn!(error = %err, "an HSM call failed; reconnecting on a later call");
        self.broken.store(true, Ordering::Release);
        CryptoError::Unavailable
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Sessions must close before the library is finalized.
        self.idle().clear();
        let login = self
            .login
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        drop(login);
        if let Err(err) = self.ctx.clone().finalize() {
            tracing::warn!(error = %err, "finalizing the PKCS#11 library failed");
        }
    }
}

/// Whether a failed call says the input was bad (wrong tag, wrong length), not the device.
fn is_data_error(err: &CkError, session: &Session) -> bool {
    match err {
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange,
            _,
        ) => true,
        // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR, which is also what a
        // failing device says. A session that still answers tells the two apart.
        CkError::Pkcs11(RvError::GeneralError, Function::Decrypt) => {
            session.get_session_info().is_ok()
        }
        _ => false,
    }
}

/// The one slot whose token carries `label`. Two tokens with the same label are refused: the
/// KEK could then be either, and guessing is how keys get lost.
fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, ConnectError> {
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_token()? {
        if ctx.get_token_info(slot)?.label().trim_end() == label {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(ConnectError::Other(format!("no token labelled {label:?}"))),
        _ => Err(ConnectError::Other(format!(
            "{} tokens are labelled {label:?}; refusing to guess",
            found.len()
        ))),
    }
}

/// Finds the objects matching `template` with their `CKA_ID`s, in ascending id order, so every
/// origin sharing the token picks the same one (the signing key takes the first, the KEK the
/// last).
fn find_converged(
    session: &Session,
    template: &[Attribute],
) -> Result<Vec<(ObjectHandle, Vec<u8>)>, CkError> {
    let mut found = Vec::new();
    for handle in session.find_objects(template)? {
        let id = session
            .get_attributes(handle, &[AttributeType::Id])?
            .into_iter()
            .find_map(|attribute| match attribute {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default();
        found.push((handle, id));
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// A fresh random `CKA_ID` for a key about to be created.
fn random_id() -> Result<Vec<u8>, ConnectError> {
    let mut id = vec![0u8; KEY_ID_LEN];
    OsRng
        .try_fill_bytes(&mut id)
        .map_err(|err| ConnectError::Other(format!("no randomness for a key id: {err}")))?;
    Ok(id)
}
