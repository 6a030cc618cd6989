//! The PKCS#11 key wrapper against a real SoftHSM2 token.
//!
//! SoftHSM reads `SOFTHSM2_CONF` when the library initialises, once per process, so this
//! binary re-runs itself with that variable pointing at a fresh token directory, then runs its
//! cases one after another (the PKCS#11 library is process-global state).
//! Needs `softhsm2-util` and the module (Debian's softhsm2); `scripts/test.sh` installs both.

// Without the test harness clippy cannot tell this is test code; a failed expect is a failed
// case here, caught and counted by `main`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use oxvault_origin::config::HsmConfig;
use oxvault_origin::crypto::pkcs11::{Pkcs11Hsm, RETRY_AFTER};
use oxvault_origin::crypto::{CryptoError, DataKey, KeyWrapper, TokenSigner, WrappedKey};
use secrecy::SecretString;

const PIN: &str = "1234-test";
const SO_PIN: &str = "5678-test";
const CHILD_MARKER: &str = "OXVAULT_SOFTHSM_TEST_CHILD";

fn module() -> PathBuf {
    std::env::var_os("OXVAULT_HSM_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return run_as_child();
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
            "an_extractable_key_under_the_kek_label_is_refused",
            an_extractable_key_under_the_kek_label_is_refused,
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
        sessions: 2,
    }
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
        !a.bytes.windows(32).any(|w| w == key.expose()),
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
    assert!(matches!(
        wrapper.unwrap(&other_kek, b"here"),
        Err(CryptoError::Integrity)
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
