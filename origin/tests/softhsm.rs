//! The PKCS#11 key wrapper against a real SoftHSM2 token.
//!
//! SoftHSM reads `SOFTHSM2_CONF` when the library initialises, once per process, so this
//! binary re-runs itself with that variable pointing at a fresh token directory, then runs its
//! cases one after another (the PKCS#11 library is process-global state).
//! Needs `softhsm2-util` and the module (Debian's softhsm2); `scripts/test.sh` installs both.
//!
//! Some cases need a second process on the same token (another origin, or `rotate-kek`): the
//! binary runs itself once more as a helper (see [`helper`]) for those.

// Without the test harness clippy cannot tell this is test code; a failed expect is a failed
// case here, caught and counted by `main`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use oxvault_origin::config::HsmConfig;
use oxvault_origin::crypto::pkcs11::{Pkcs11Hsm, RETRY_AFTER};
use oxvault_origin::crypto::{
    AuditMac, CryptoError, DataKey, KekAdmin, KekAdminError, KeyWrapper, TokenSigner, WrappedKey,
    hazmat, kek_id_hex,
};
use secrecy::SecretString;

const PIN: &str = "1234-test";
const SO_PIN: &str = "5678-test";
const CHILD_MARKER: &str = "OXVAULT_SOFTHSM_TEST_CHILD";
/// Set in a helper run: what the helper does (see [`helper`]).
const HELPER: &str = "OXVAULT_SOFTHSM_TEST_HELPER";
/// The token directory of the child's `SOFTHSM2_CONF`.
const TOKEN_DIR: &str = "OXVAULT_SOFTHSM_TEST_TOKENDIR";
/// The data key and AAD a helper wraps, so the main process can check what it unwraps.
const HELPER_KEY: [u8; 32] = [0x33; 32];
const HELPER_AAD: &[u8] = b"wrapped by another process";

fn module() -> PathBuf {
    std::env::var_os("OXVAULT_HSM_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return run_as_child();
    }
    if let Ok(task) = std::env::var(HELPER) {
        helper(&task);
        return ExitCode::SUCCESS;
    }
    let cases: &[(&str, fn())] = &[
        (
            "a_fresh_token_gets_a_kek_and_keys_round_trip",
            a_fresh_token_gets_a_kek_and_keys_round_trip,
        ),
        (
            "any_flipped_bit_or_other_aad_fails_closed",
            any_flipped_bit_or_other_aad_fails_closed,
        ),
        (
            "the_kek_is_sensitive_and_its_value_cannot_be_read",
            the_kek_is_sensitive_and_its_value_cannot_be_read,
        ),
        (
            "a_restarted_wrapper_reuses_the_kek_and_opens_old_keys",
            a_restarted_wrapper_reuses_the_kek_and_opens_old_keys,
        ),
        ("a_wrong_pin_is_unavailable", a_wrong_pin_is_unavailable),
        (
            "a_missing_token_is_unavailable_until_it_appears",
            a_missing_token_is_unavailable_until_it_appears,
        ),
        (
            "the_signing_key_stays_in_the_token_and_survives_restarts",
            the_signing_key_stays_in_the_token_and_survives_restarts,
        ),
        (
            "the_audit_key_is_an_hmac_key_that_stays_in_the_token",
            the_audit_key_is_an_hmac_key_that_stays_in_the_token,
        ),
        (
            "the_audit_mac_runs_on_a_session_copy_of_the_token_key",
            the_audit_mac_runs_on_a_session_copy_of_the_token_key,
        ),
        (
            "an_extractable_key_under_the_kek_label_is_refused",
            an_extractable_key_under_the_kek_label_is_refused,
        ),
        (
            "a_new_kek_takes_over_and_keys_under_the_old_one_still_unwrap",
            a_new_kek_takes_over_and_keys_under_the_old_one_still_unwrap,
        ),
        (
            "a_kek_made_by_another_process_is_picked_up_without_reconnecting",
            a_kek_made_by_another_process_is_picked_up_without_reconnecting,
        ),
        (
            "a_fenced_kek_unwraps_but_no_longer_wraps_and_a_destroyed_one_does_neither",
            a_fenced_kek_unwraps_but_no_longer_wraps_and_a_destroyed_one_does_neither,
        ),
        (
            "a_wrapper_follows_when_another_process_retires_its_kek",
            a_wrapper_follows_when_another_process_retires_its_kek,
        ),
        (
            "an_extractable_key_with_a_greater_id_is_ignored_not_used",
            an_extractable_key_with_a_greater_id_is_ignored_not_used,
        ),
        (
            "a_token_directory_taken_away_is_unavailable_until_it_returns",
            a_token_directory_taken_away_is_unavailable_until_it_returns,
        ),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        match std::panic::catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!();
    println!("{} passed, {failed} failed", cases.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Re-runs this binary with `SOFTHSM2_CONF` pointing at a fresh token directory.
fn run_as_child() -> ExitCode {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).expect("token dir");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\n", tokens.display()),
    )
    .expect("softhsm2.conf");
    let status = Command::new(std::env::current_exe().expect("own path"))
        .env("SOFTHSM2_CONF", &conf)
        .env(TOKEN_DIR, &tokens)
        .env(CHILD_MARKER, "1")
        .status()
        .expect("re-run self");
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Creates a token labelled `label` in the directory `SOFTHSM2_CONF` names.
fn init_token(label: &str) {
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ])
        .output()
        .expect("softhsm2-util must be installed (Debian package softhsm2)");
    assert!(
        out.status.success(),
        "init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config(token: &str, pin: &str) -> HsmConfig {
    HsmConfig {
        module: module(),
        token_label: token.to_owned(),
        pin: SecretString::from(pin),
        kek_label: "test-kek".to_owned(),
        signing_key_label: "test-signing".to_owned(),
        audit_key_label: "test-audit".to_owned(),
        sessions: 2,
        kek_refresh: Duration::from_secs(60),
        call_timeout: oxvault_origin::crypto::HSM_CALL_TIMEOUT,
        dek_cache: oxvault_origin::crypto::DekCacheSettings::default(),
    }
}

/// A helper run: another process using the token, as a second origin or `rotate-kek` would.
///
/// - `rotate:<token>`: creates a KEK, wraps [`HELPER_KEY`] under it and prints
///   `<kek id> <wrapped key>` in hex;
/// - `retire:<token>`: creates a KEK, then fences and destroys every other one.
fn helper(task: &str) {
    let (action, token) = task.split_once(':').expect("helper task");
    let hsm = Pkcs11Hsm::new(config(token, PIN));
    let new = hsm.create_kek().expect("create a KEK");
    match action {
        "rotate" => {
            let wrapped = hsm
                .wrap(&hazmat::data_key(HELPER_KEY), HELPER_AAD)
                .expect("wrap");
            assert_eq!(wrapped.kek_id, new, "the new KEK is current at once");
            println!("{} {}", kek_id_hex(&new), kek_id_hex(&wrapped.bytes));
        }
        "retire" => {
            for kek in hsm.list_keks().expect("list") {
                if kek.id != new {
                    hsm.fence_kek(&kek.id).expect("fence");
                    hsm.destroy_kek(&kek.id).expect("destroy");
                }
            }
        }
        other => panic!("unknown helper action {other}"),
    }
}

/// Runs [`helper`] in another process and returns what it printed.
fn run_helper(task: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(HELPER, task)
        .output()
        .expect("run the helper");
    assert!(
        out.status.success(),
        "helper {task} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Opens the token directly (no wrapper alive in this process) for inspection.
fn with_raw_session<T>(token: &str, op: impl FnOnce(&Session) -> T) -> T {
    let ctx = Pkcs11::new(module()).expect("module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("initialize");
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|slot| {
            ctx.get_token_info(*slot)
                .expect("token info")
                .label()
                .trim_end()
                == token
        })
        .expect("token slot");
    let value = {
        let session = ctx.open_rw_session(slot).expect("session");
        session
            .login(UserType::User, Some(&AuthPin::from(PIN)))
            .expect("login");
        op(&session)
    };
    ctx.finalize().expect("finalize");
    value
}

fn kek_count(session: &Session) -> usize {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"test-kek".to_vec()),
        ])
        .expect("find")
        .len()
}

/// The audit keys in the token (objects under the test audit label).
fn audit_keys(session: &Session) -> Vec<ObjectHandle> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"test-audit".to_vec()),
        ])
        .expect("find")
}

fn a_fresh_token_gets_a_kek_and_keys_round_trip() {
    init_token("fresh");
    let wrapper = Pkcs11Hsm::new(config("fresh", PIN));
    wrapper.connect_now().expect("connects and creates the KEK");
    let key = DataKey::generate().expect("key");
    let a = wrapper.wrap(&key, b"org|vault|path|1").expect("wrap");
    let b = wrapper.wrap(&key, b"org|vault|path|1").expect("wrap");
    assert_eq!(a.bytes.len(), 12 + 32 + 16);
    assert_ne!(a.bytes, b.bytes, "each wrap uses a fresh nonce");
    assert!(
        !a.bytes.windows(32).any(|w| w == hazmat::bytes(&key)),
        "the key is not stored in clear"
    );
    assert_eq!(
        wrapper.unwrap(&a, b"org|vault|path|1").expect("unwrap"),
        key
    );
    drop(wrapper);
    assert_eq!(with_raw_session("fresh", kek_count), 1);
}

fn any_flipped_bit_or_other_aad_fails_closed() {
    init_token("tamper");
    let wrapper = Pkcs11Hsm::new(config("tamper", PIN));
    let key = DataKey::generate().expect("key");
    let wrapped = wrapper.wrap(&key, b"here").expect("wrap");
    assert!(matches!(
        wrapper.unwrap(&wrapped, b"there"),
        Err(CryptoError::Integrity)
    ));
    for byte in 0..wrapped.bytes.len() {
        let mut bad = wrapped.clone();
        bad.bytes[byte] ^= 0x01;
        assert!(
            matches!(wrapper.unwrap(&bad, b"here"), Err(CryptoError::Integrity)),
            "flipping byte {byte} must fail closed"
        );
    }
    let mut truncated = wrapped.clone();
    truncated.bytes.pop();
    assert!(matches!(
        wrapper.unwrap(&truncated, b"here"),
        Err(CryptoError::Integrity)
    ));
    let other_kek = WrappedKey {
        kek_id: vec![0; 16],
        bytes: wrapped.bytes.clone(),
    };
    // An id the token does not hold: the token is fine, the key cannot be opened here.
    assert!(matches!(
        wrapper.unwrap(&other_kek, b"here"),
        Err(CryptoError::KekMissing)
    ));
    // Bad input must not have cost the connection.
    assert_eq!(wrapper.unwrap(&wrapped, b"here").expect("still works"), key);
}

fn the_kek_is_sensitive_and_its_value_cannot_be_read() {
    init_token("sensitive");
    Pkcs11Hsm::new(config("sensitive", PIN))
        .connect_now()
        .expect("connect");
    with_raw_session("sensitive", |session| {
        let kek = session
            .find_objects(&[Attribute::Label(b"test-kek".to_vec())])
            .expect("find")
            .into_iter()
            .next()
            .expect("the KEK exists");
        let flags = session
            .get_attributes(
                kek,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Token,
                    AttributeType::ValueLen,
                ],
            )
            .expect("attributes");
        assert!(flags.contains(&Attribute::Sensitive(true)), "{flags:?}");
        assert!(flags.contains(&Attribute::Extractable(false)), "{flags:?}");
        assert!(
            flags.contains(&Attribute::NeverExtractable(true)),
            "{flags:?}"
        );
        assert!(flags.contains(&Attribute::Token(true)), "{flags:?}");
        assert!(flags.contains(&Attribute::ValueLen(32.into())), "{flags:?}");
        let value = session
            .get_attributes(kek, &[AttributeType::Value])
            .expect("call answers");
        assert!(
            !value.iter().any(|a| matches!(a, Attribute::Value(_))),
            "the KEK's value must not be readable: {value:?}"
        );
    });
}

fn a_restarted_wrapper_reuses_the_kek_and_opens_old_keys() {
    init_token("restart");
    let key = DataKey::generate().expect("key");
    let wrapped = {
        let first = Pkcs11Hsm::new(config("restart", PIN));
        first.wrap(&key, b"aad").expect("wrap")
    };
    let second = Pkcs11Hsm::new(config("restart", PIN));
    assert_eq!(
        second
            .unwrap(&wrapped, b"aad")
            .expect("unwrap after restart"),
        key
    );
    drop(second);
    assert_eq!(
        with_raw_session("restart", kek_count),
        1,
        "no second KEK was created"
    );
}

fn a_wrong_pin_is_unavailable() {
    init_token("wrongpin");
    let wrapper = Pkcs11Hsm::new(config("wrongpin", "not-the-pin"));
    assert!(matches!(
        wrapper.connect_now(),
        Err(CryptoError::Unavailable)
    ));
    let key = DataKey::generate().expect("key");
    assert!(matches!(
        wrapper.wrap(&key, b"aad"),
        Err(CryptoError::Unavailable)
    ));
}

fn a_missing_token_is_unavailable_until_it_appears() {
    let wrapper = Pkcs11Hsm::new(config("late", PIN));
    let key = DataKey::generate().expect("key");
    assert!(matches!(
        wrapper.wrap(&key, b"aad"),
        Err(CryptoError::Unavailable)
    ));
    init_token("late");
    let deadline = Instant::now() + RETRY_AFTER * 5;
    loop {
        match wrapper.wrap(&key, b"aad") {
            Ok(wrapped) => {
                assert_eq!(wrapper.unwrap(&wrapped, b"aad").expect("unwrap"), key);
                return;
            }
            Err(CryptoError::Unavailable) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => panic!("the wrapper did not recover once the token appeared: {err}"),
        }
    }
}

fn an_extractable_key_under_the_kek_label_is_refused() {
    init_token("weak");
    with_raw_session("weak", |session| {
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Label(b"test-kek".to_vec()),
                    Attribute::Token(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ],
            )
            .expect("a weak key");
    });
    let wrapper = Pkcs11Hsm::new(config("weak", PIN));
    assert!(matches!(
        wrapper.connect_now(),
        Err(CryptoError::Unavailable)
    ));
}

fn the_signing_key_stays_in_the_token_and_survives_restarts() {
    init_token("signing");
    let first = Pkcs11Hsm::new(config("signing", PIN));
    let signature = first.sign(b"header.payload").expect("sign");
    let public_key = first.public_key().expect("public key");
    assert_eq!(signature.public_key, public_key);
    assert_ne!(signature.bytes, [0u8; 64]);
    assert_ne!(
        first.sign(b"header.other").expect("sign").bytes,
        signature.bytes,
        "different messages, different signatures"
    );
    drop(first);

    let second = Pkcs11Hsm::new(config("signing", PIN));
    assert_eq!(second.public_key().expect("public key"), public_key);
    assert_eq!(
        second.sign(b"header.payload").expect("sign").bytes,
        signature.bytes,
        "Ed25519 is deterministic: the same key signs the same message identically"
    );
    drop(second);

    with_raw_session("signing", |session| {
        let private = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(b"test-signing".to_vec()),
            ])
            .expect("find");
        assert_eq!(private.len(), 1, "one key pair, not one per start");
        let flags = session
            .get_attributes(
                private[0],
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .expect("attributes");
        assert!(flags.contains(&Attribute::Sensitive(true)), "{flags:?}");
        assert!(flags.contains(&Attribute::Extractable(false)), "{flags:?}");
    });
}

fn the_audit_key_is_an_hmac_key_that_stays_in_the_token() {
    use hmac::{KeyInit as _, Mac as _};

    init_token("audit");
    let first = Pkcs11Hsm::new(config("audit", PIN));
    let mac = first.mac(b"event one").expect("mac");
    assert_ne!(first.mac(b"event two").expect("mac"), mac);
    drop(first);
    // Another connection (a restarted or second origin) finds the same key.
    let second = Pkcs11Hsm::new(config("audit", PIN));
    assert_eq!(second.mac(b"event one").expect("mac"), mac);
    drop(second);

    with_raw_session("audit", |session| {
        let keys = audit_keys(session);
        assert_eq!(keys.len(), 1, "one audit key, not one per start");
        let flags = session
            .get_attributes(
                keys[0],
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Value,
                ],
            )
            .expect("attributes");
        assert!(flags.contains(&Attribute::Sensitive(true)), "{flags:?}");
        assert!(flags.contains(&Attribute::Extractable(false)), "{flags:?}");
        assert!(
            !flags.iter().any(|a| matches!(a, Attribute::Value(_))),
            "the key's value must not be readable: {flags:?}"
        );
    });
    // It really is HMAC-SHA256: a key of our own, imported the same way, gives the RFC 2104
    // answer. (The audit key's own value cannot be read, so the check uses a second key.)
    let key = [0x0bu8; 32];
    let expected = {
        let mut hmac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        hmac.update(b"event one");
        hmac.finalize().into_bytes()
    };
    with_raw_session("audit", |session| {
        let handle = session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Value(key.to_vec()),
                Attribute::Sign(true),
                Attribute::Token(false),
            ])
            .expect("import a test key");
        let mac = session
            .sign(&Mechanism::Sha256Hmac, handle, b"event one")
            .expect("hmac");
        assert_eq!(mac.as_slice(), expected.as_slice());
    });
}

/// A connection MACs with a session object copied from the token's audit key: the same key
/// (same MACs as before), held in the HSM's memory, so a MAC reads no token file (it still
/// works while the token's files are away), and the token keeps exactly one audit key.
fn the_audit_mac_runs_on_a_session_copy_of_the_token_key() {
    init_token("copy");
    let hsm = Pkcs11Hsm::new(config("copy", PIN));
    let mac = hsm.mac(b"event one").expect("mac");
    let wrapped = hsm
        .wrap(&DataKey::generate().expect("key"), b"aad")
        .expect("wrap");
    let tokens = PathBuf::from(std::env::var_os(TOKEN_DIR).expect("token dir"));
    let away = tokens.with_extension("away");
    std::fs::rename(&tokens, &away).expect("take the token directory away");
    let during = hsm.mac(b"event one");
    let unwrap_during = hsm.unwrap(&wrapped, b"aad");
    std::fs::rename(&away, &tokens).expect("put the token directory back");
    assert_eq!(during.expect("a MAC from the session copy"), mac);
    assert!(
        matches!(unwrap_during, Err(CryptoError::Unavailable)),
        "token objects are still read from the token: {unwrap_during:?}"
    );
    drop(hsm);

    let again = Pkcs11Hsm::new(config("copy", PIN));
    assert_eq!(again.mac(b"event one").expect("mac"), mac);
    drop(again);
    with_raw_session("copy", |session| {
        let keys = audit_keys(session);
        assert_eq!(keys.len(), 1, "the copies went with their sessions");
        let flags = session
            .get_attributes(keys[0], &[AttributeType::Token])
            .expect("attributes");
        assert_eq!(flags, [Attribute::Token(true)]);
    });
}

fn a_new_kek_takes_over_and_keys_under_the_old_one_still_unwrap() {
    init_token("rotate");
    let hsm = Pkcs11Hsm::new(config("rotate", PIN));
    let key = DataKey::generate().expect("key");
    let old = hsm.wrap(&key, b"aad").expect("wrap");

    let new_id = hsm.create_kek().expect("create a KEK");

    assert!(new_id > old.kek_id, "the new KEK's id sorts last");
    assert_eq!(new_id.len(), 16);
    let new = hsm.wrap(&key, b"aad").expect("wrap");
    assert_eq!(new.kek_id, new_id, "wraps go under the new KEK at once");
    assert_eq!(hsm.unwrap(&old, b"aad").expect("old key"), key);
    assert_eq!(hsm.unwrap(&new, b"aad").expect("new key"), key);
    let moved = WrappedKey {
        kek_id: new_id.clone(),
        bytes: old.bytes.clone(),
    };
    assert!(
        matches!(hsm.unwrap(&moved, b"aad"), Err(CryptoError::Integrity)),
        "a key sealed by one KEK does not open under another"
    );
    let keks = hsm.list_keks().expect("list");
    assert_eq!(keks.len(), 2);
    assert!(keks[1].current && keks[1].id == new_id && keks[1].can_encrypt);
    assert!(!keks[0].current && keks[0].id == old.kek_id);
    drop(hsm);

    // A restart picks the greatest id too.
    let restarted = Pkcs11Hsm::new(config("rotate", PIN));
    assert_eq!(restarted.wrap(&key, b"aad").expect("wrap").kek_id, new_id);
    assert_eq!(restarted.unwrap(&old, b"aad").expect("old key"), key);
    drop(restarted);
    assert_eq!(with_raw_session("rotate", kek_count), 2);
}

fn a_kek_made_by_another_process_is_picked_up_without_reconnecting() {
    init_token("shared");
    let mut settings = config("shared", PIN);
    settings.kek_refresh = Duration::from_secs(1);
    let hsm = Pkcs11Hsm::new(settings);
    let key = DataKey::generate().expect("key");
    let first = hsm.wrap(&key, b"aad").expect("wrap");

    // Another process rotates and wraps under its new KEK: unwrapping that key here finds
    // the KEK by its id, listing the token's KEKs again.
    let printed = run_helper("rotate:shared");
    let (second_id, wrapped) = printed.trim().split_once(' ').expect("two fields");
    let theirs = WrappedKey {
        kek_id: unhex(second_id),
        bytes: unhex(wrapped),
    };
    assert_eq!(
        hsm.unwrap(&theirs, HELPER_AAD)
            .expect("unwrap under a KEK made elsewhere"),
        hazmat::data_key(HELPER_KEY)
    );
    assert_eq!(
        hsm.wrap(&key, b"aad").expect("wrap").kek_id,
        unhex(second_id)
    );

    // A third KEK made elsewhere, with nothing here naming it: the periodic listing finds it.
    let printed = run_helper("rotate:shared");
    let third_id = unhex(printed.split(' ').next().expect("id"));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(hsm.wrap(&key, b"aad").expect("wrap").kek_id, third_id);
    assert_eq!(hsm.unwrap(&first, b"aad").expect("first key"), key);
}

fn a_fenced_kek_unwraps_but_no_longer_wraps_and_a_destroyed_one_does_neither() {
    init_token("retire");
    let hsm = Pkcs11Hsm::new(config("retire", PIN));
    let key = DataKey::generate().expect("key");
    let old = hsm.wrap(&key, b"aad").expect("wrap");
    let new_id = hsm.create_kek().expect("create");

    assert!(matches!(
        hsm.fence_kek(&new_id),
        Err(KekAdminError::Refused(_))
    ));
    assert!(matches!(
        hsm.destroy_kek(&new_id),
        Err(KekAdminError::Refused(_))
    ));
    hsm.fence_kek(&old.kek_id).expect("fence the old KEK");
    let keks = hsm.list_keks().expect("list");
    assert!(!keks[0].can_encrypt && keks[1].can_encrypt, "{keks:?}");
    assert_eq!(hsm.unwrap(&old, b"aad").expect("a fenced KEK unwraps"), key);
    assert_eq!(hsm.wrap(&key, b"aad").expect("wrap").kek_id, new_id);
    drop(hsm);
    with_raw_session("retire", |session| {
        let fenced = session
            .find_objects(&[
                Attribute::Label(b"test-kek".to_vec()),
                Attribute::Id(old.kek_id.clone()),
            ])
            .expect("find")[0];
        let flags = session
            .get_attributes(fenced, &[AttributeType::Encrypt, AttributeType::Wrap])
            .expect("attributes");
        assert!(flags.contains(&Attribute::Encrypt(false)), "{flags:?}");
        assert!(flags.contains(&Attribute::Wrap(false)), "{flags:?}");
    });
    let hsm = Pkcs11Hsm::new(config("retire", PIN));
    assert_eq!(
        hsm.unwrap(&old, b"aad")
            .expect("still unwraps after a restart"),
        key
    );
    hsm.destroy_kek(&old.kek_id).expect("destroy the old KEK");
    assert!(matches!(
        hsm.unwrap(&old, b"aad"),
        Err(CryptoError::KekMissing)
    ));
    assert_eq!(hsm.list_keks().expect("list").len(), 1);
    assert_eq!(hsm.wrap(&key, b"aad").expect("wrap").kek_id, new_id);
}

fn a_wrapper_follows_when_another_process_retires_its_kek() {
    init_token("follow");
    // Listing only once a minute: what makes it follow is the token refusing the old KEK.
    let hsm = Pkcs11Hsm::new(config("follow", PIN));
    let key = DataKey::generate().expect("key");
    let old = hsm.wrap(&key, b"aad").expect("wrap");

    run_helper("retire:follow");

    let new = hsm
        .wrap(&key, b"aad")
        .expect("wrap after the KEK was retired elsewhere");
    assert_ne!(new.kek_id, old.kek_id);
    assert_eq!(hsm.unwrap(&new, b"aad").expect("unwrap"), key);
    assert!(matches!(
        hsm.unwrap(&old, b"aad"),
        Err(CryptoError::KekMissing)
    ));
}

fn an_extractable_key_with_a_greater_id_is_ignored_not_used() {
    init_token("planted");
    let hsm = Pkcs11Hsm::new(config("planted", PIN));
    let key = DataKey::generate().expect("key");
    let ours = hsm.wrap(&key, b"aad").expect("wrap");
    drop(hsm);
    with_raw_session("planted", |session| {
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Label(b"test-kek".to_vec()),
                    Attribute::Id(vec![0xFF; 16]),
                    Attribute::Token(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ],
            )
            .expect("a planted key");
    });
    let hsm = Pkcs11Hsm::new(config("planted", PIN));
    assert_eq!(hsm.wrap(&key, b"aad").expect("wrap").kek_id, ours.kek_id);
    assert_eq!(hsm.list_keks().expect("list").len(), 1);
    let new_id = hsm
        .create_kek()
        .expect("a planted key does not block rotation");
    assert_eq!(hsm.wrap(&key, b"aad").expect("wrap").kek_id, new_id);
}

fn a_token_directory_taken_away_is_unavailable_until_it_returns() {
    init_token("outage");
    let hsm = Pkcs11Hsm::new(config("outage", PIN));
    let key = DataKey::generate().expect("key");
    let wrapped = hsm.wrap(&key, b"aad").expect("wrap");
    let tokens = PathBuf::from(std::env::var_os(TOKEN_DIR).expect("token dir"));
    let away = tokens.with_extension("away");

    std::fs::rename(&tokens, &away).expect("take the token directory away");
    let during_wrap = hsm.wrap(&key, b"aad");
    let during_unwrap = hsm.unwrap(&wrapped, b"aad");
    let during_sign = hsm.sign(b"header.payload");
    std::fs::rename(&away, &tokens).expect("put the token directory back");

    assert!(
        matches!(during_wrap, Err(CryptoError::Unavailable)),
        "{during_wrap:?}"
    );
    assert!(
        matches!(during_unwrap, Err(CryptoError::Unavailable)),
        "an outage is not an integrity failure: {during_unwrap:?}"
    );
    assert!(matches!(during_sign, Err(CryptoError::Unavailable)));
    let deadline = Instant::now() + RETRY_AFTER * 5;
    loop {
        match hsm.unwrap(&wrapped, b"aad") {
            Ok(back) => {
                assert_eq!(back, key);
                break;
            }
            Err(CryptoError::Unavailable) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => panic!("the wrapper did not recover once the token returned: {err}"),
        }
    }
    assert_eq!(hsm.wrap(&key, b"aad").expect("wrap").kek_id, wrapped.kek_id);
}
