//! The async front of the HSM seams ([`KeyWrapper`], [`TokenSigner`]): runs each blocking HSM
//! call on tokio's blocking pool, at most `concurrency` at a time, keeping the caller's span.
//!
//! The bound matters twice: a slow or hung HSM must not eat every blocking thread, and a
//! PKCS#11 token serves a limited number of sessions.
//!
//! A call is also bounded in time ([`HSM_CALL_TIMEOUT`]), the wait for a permit included: an
//! HSM that stops answering (a network HSM behind a dropped route, a wedged module) fails the
//! requests that need it with `Unavailable` (503) instead of holding them open. A blocking
//! thread cannot be cancelled, so a call that outlives its caller keeps its permit until it
//! returns: the bound on concurrent HSM work holds even then.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::Instrument;

use super::dek_cache::{DekCache, DekCacheSettings};
use super::{
    AuditMac, CryptoError, DataKey, KeyWrapper, MAC_LEN, Signature, TokenSigner, WrappedKey,
};

/// Additional data bound into the health probe's wrap, so a probe key can never be confused
/// with a real one.
const PROBE_AAD: &[u8] = b"oxvault:health-probe";

/// The longest a caller waits for an HSM call, its turn included. Far above a healthy call
/// (about a millisecond for SoftHSM, a few for a network HSM under load), and below the
/// timeouts of the clients and proxies in front of the origin.
pub const HSM_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared handle to the HSM; cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    wrapper: Arc<dyn KeyWrapper>,
    signer: Arc<dyn TokenSigner>,
    /// `None` until [`Keyring::with_audit_mac`]: audit appends then fail (closed).
    audit: Option<Arc<dyn AuditMac>>,
    permits: Arc<Semaphore>,
    /// See [`HSM_CALL_TIMEOUT`].
    call_timeout: Duration,
    /// Data keys opened or sealed lately (off until [`Keyring::with_dek_cache`]).
    deks: Arc<DekCache>,
    /// Blocking HSM calls made so far (each may make several PKCS#11 calls).
    calls: Arc<AtomicU64>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("available_permits", &self.permits.available_permits())
            .field("deks", &self.deks)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring running at most `concurrency` HSM calls at once (at least one).
    pub fn new(
        wrapper: Arc<dyn KeyWrapper>,
        signer: Arc<dyn TokenSigner>,
        concurrency: usize,
    ) -> Self {
        Self {
            wrapper,
            signer,
            audit: None,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            call_timeout: HSM_CALL_TIMEOUT,
            deks: Arc::new(DekCache::new(DekCacheSettings {
                capacity: 0,
                ..DekCacheSettings::default()
            })),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same keyring, keeping opened and sealed data keys for a while (see
    /// `crypto::dek_cache`).
    pub fn with_dek_cache(mut self, settings: DekCacheSettings) -> Self {
        self.deks = Arc::new(DekCache::new(settings));
        self
    }

    /// The same keyring, giving up on an HSM call after `timeout` instead of
    /// [`HSM_CALL_TIMEOUT`].
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How many data keys the cache holds now.
    pub fn cached_keys(&self) -> usize {
        self.deks.len()
    }

    /// How many blocking HSM calls this keyring has made (for `/metrics` and benchmarks).
    pub fn hsm_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The same keyring, computing audit MACs with `audit`.
    pub fn with_audit_mac(mut self, audit: Arc<dyn AuditMac>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Runs `op` with the audit MAC key (HMAC-SHA256 inside the HSM) in one blocking call:
    /// linking a batch of events or verifying a chain needs many MACs in sequence, and one
    /// hop to the blocking pool each would dominate.
    pub async fn mac_with<T, F>(&self, op: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn AuditMac) -> Result<T, CryptoError> + Send + 'static,
    {
        let Some(audit) = self.audit.clone() else {
            tracing::error!("no audit MAC key is configured; refusing to record or verify events");
            return Err(CryptoError::Unavailable);
        };
        self.run("mac", move || op(audit.as_ref())).await
    }

    /// The audit MACs of `messages`, in order, computed in one blocking call.
    pub async fn audit_macs(
        &self,
        messages: Vec<Vec<u8>>,
    ) -> Result<Vec<[u8; MAC_LEN]>, CryptoError> {
        self.mac_with(move |audit: &dyn AuditMac| {
            messages.iter().map(|message| audit.mac(message)).collect()
        })
        .await
    }

    /// Seals `key` under the KEK (and remembers it, so its first reads need no unwrap).
    pub(in crate::crypto) async fn wrap(
        &self,
        key: DataKey,
        aad: Vec<u8>,
    ) -> Result<WrappedKey, CryptoError> {
        let wrapper = Arc::clone(&self.wrapper);
        let deks = Arc::clone(&self.deks);
        self.run("wrap", move || {
            let wrapped = wrapper.wrap(&key, &aad)?;
            deks.insert(&wrapped, &aad, &key);
            Ok(wrapped)
        })
        .await
    }

    /// Opens a key sealed by [`Keyring::wrap`]: from the cache when it was opened or sealed
    /// lately under the same place, else in the HSM.
    pub(in crate::crypto) async fn unwrap(
        &self,
        wrapped: WrappedKey,
        aad: Vec<u8>,
    ) -> Result<DataKey, CryptoError> {
        if let Some(key) = self.deks.get(&wrapped, &aad) {
            return Ok(key);
        }
        let wrapper = Arc::clone(&self.wrapper);
        let deks = Arc::clone(&self.deks);
        self.run("unwrap", move || {
            let key = wrapper.unwrap(&wrapped, &aad)?;
            deks.insert(&wrapped, &aad, &key);
            Ok(key)
        })
        .await
    }

    /// Signs `message` with the token-signing key.
    pub async fn sign(&self, message: Vec<u8>) -> Result<Signature, CryptoError> {
        let signer = Arc::clone(&self.signer);
        self.run("sign", move || signer.sign(&message)).await
    }

    /// The token-signing public key.
    pub async fn public_key(&self) -> Result<[u8; 32], CryptoError> {
        let signer = Arc::clone(&self.signer);
        self.run("public_key", move || signer.public_key()).await
    }

    /// A real round trip through the HSM: wraps a fresh random key under the KEK, unwraps it
    /// and checks it came back unchanged. Proves the module, token, login and KEK all work.
    pub async fn probe(&self) -> Result<(), CryptoError> {
        let key = DataKey::generate().map_err(|err| {
            tracing::error!(error = %err, "the OS gave no randomness for the HSM probe");
            CryptoError::Unavailable
        })?;
        let wrapper = Arc::clone(&self.wrapper);
        self.run("probe", move || {
            let wrapped = wrapper.wrap(&key, PROBE_AAD)?;
            let back = wrapper.unwrap(&wrapped, PROBE_AAD)?;
            if back == key {
                Ok(())
            } else {
                tracing::error!("the HSM probe key did not round-trip");
                Err(CryptoError::Unavailable)
            }
        })
        .await
    }

    /// Runs `op` (named `name` in the metrics) on the blocking pool, at most `permits` at
    /// once; records how long the HSM took and how it failed.
    async fn run<T, F>(&self, name: &'static str, op: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, CryptoError> + Send + 'static,
    {
        let started = Instant::now();
        let permits = Arc::clone(&self.permits);
        let calls = Arc::clone(&self.calls);
        let span = tracing::Span::current();
        let call = async move {
            // The semaphore is never closed, so acquiring fails only if that invariant breaks;
            // fail closed rather than run unbounded.
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| CryptoError::Unavailable)?;
            calls.fetch_add(1, Ordering::Relaxed);
            tokio::task::spawn_blocking(move || {
                // The permit goes with the call, not with its caller (see the module docs).
                let _permit = permit;
                span.in_scope(op)
            })
            .in_current_span()
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "an HSM call panicked or was cancelled");
                CryptoError::Unavailable
            })?
        };
        let Ok(result) = tokio::time::timeout(self.call_timeout, call).await else {
            tracing::error!(
                op = name,
                timeout_ms = self.call_timeout.as_millis(),
                "an HSM call did not end in time; answering unavailable"
            );
            metrics::counter!("oxvault_hsm_errors_total", "op" => name, "error" => "timeout")
                .increment(1);
            return Err(CryptoError::Unavailable);
        };
        metrics::histogram!("oxvault_hsm_call_seconds", "op" => name)
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            metrics::counter!("oxvault_hsm_errors_total", "op" => name, "error" => err.kind())
                .increment(1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::testing::{FirstByteMac, NoHsm, XorKeks};

    #[tokio::test]
    async fn the_probe_does_a_real_wrap_and_unwrap() {
        let wrapper = Arc::new(XorKeks::new(1));
        let keyring = Keyring::new(wrapper.clone(), Arc::new(NoHsm), 2);
        keyring.probe().await.unwrap();
        assert_eq!(wrapper.calls(), 2);
    }

    #[tokio::test]
    async fn the_probe_fails_when_the_wrapper_is_down() {
        let keyring = Keyring::new(Arc::new(NoHsm), Arc::new(NoHsm), 1);
        assert!(matches!(
            keyring.probe().await,
            Err(CryptoError::Unavailable)
        ));
    }

    #[tokio::test]
    async fn unwrap_with_other_aad_is_an_integrity_failure() {
        let keyring = Keyring::new(Arc::new(XorKeks::new(1)), Arc::new(NoHsm), 1);
        let key = DataKey::generate().unwrap();
        let wrapped = keyring.wrap(key.clone(), b"here".to_vec()).await.unwrap();
        let back = keyring
            .unwrap(wrapped.clone(), b"here".to_vec())
            .await
            .unwrap();
        assert_eq!(back, key);
        assert!(matches!(
            keyring.unwrap(wrapped, b"there".to_vec()).await,
            Err(CryptoError::Integrity)
        ));
    }

    #[tokio::test]
    async fn a_hung_call_answers_unavailable_in_time_and_keeps_its_permit_until_it_returns() {
        let timeout = Duration::from_millis(100);
        let keyring = Keyring::new(Arc::new(NoHsm), Arc::new(NoHsm), 1)
            .with_audit_mac(Arc::new(FirstByteMac))
            .with_call_timeout(timeout);
        let (release, hung) = std::sync::mpsc::channel::<()>();
        let started = Instant::now();
        let outcome = keyring
            .mac_with(move |_| {
                let _ = hung.recv();
                Ok(())
            })
            .await;
        assert!(matches!(outcome, Err(CryptoError::Unavailable)));
        assert!(
            started.elapsed() < timeout * 10,
            "it waited for the hung call"
        );

        // The hung call still holds the only permit: the next caller gives up in time too.
        assert_eq!(keyring.permits.available_permits(), 0);
        let quick = keyring.audit_macs(vec![vec![1]]).await;
        assert!(matches!(quick, Err(CryptoError::Unavailable)));

        // Once the call returns, its permit is back and calls go through again.
        release.send(()).unwrap();
        for _ in 0..100 {
            if keyring.permits.available_permits() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(keyring.permits.available_permits(), 1);
        let macs = keyring.audit_macs(vec![vec![7]]).await.unwrap();
        assert_eq!(macs, vec![[7; MAC_LEN]]);
    }

    #[tokio::test]
    async fn batched_audit_macs_keep_their_order_and_fail_closed_without_a_key() {
        let keyring = Keyring::new(Arc::new(NoHsm), Arc::new(NoHsm), 1);
        assert!(matches!(
            keyring.audit_macs(vec![vec![1]]).await,
            Err(CryptoError::Unavailable)
        ));
        let keyring = keyring.with_audit_mac(Arc::new(FirstByteMac));
        let macs = keyring
            .audit_macs(vec![vec![3], vec![1], vec![2]])
            .await
            .unwrap();
        assert_eq!(macs, vec![[3; MAC_LEN], [1; MAC_LEN], [2; MAC_LEN]]);
        assert!(keyring.audit_macs(vec![vec![1], vec![]]).await.is_err());
    }
}
