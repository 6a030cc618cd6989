//! Google sign-in against a Google stand-in: the test makes its own RSA key, serves its JWKS
//! on loopback (the one fake allowed: Google itself cannot be reached here) and signs its own
//! id_tokens. The origin verifies them exactly as it would Google's.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use oxvault_tests::TestStack;
use reqwest::{Method, StatusCode};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

const CLIENT_ID: &str = "oxvault-test-client.apps.googleusercontent.com";
const KID: &str = "google-test-key";

/// A Google stand-in: an RSA key, its JWKS served on loopback, and a token minter (also used by
/// the audit tests).
pub(crate) struct FakeGoogle {
    key: EncodingKey,
    jwks_url: String,
}

impl FakeGoogle {
    pub(crate) async fn start() -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand_core06::OsRng, 2048).unwrap();
        let jwks = json!({"keys": [{
            "kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        }]});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/oauth2/v3/certs",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            key: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
            jwks_url: format!("http://{addr}/oauth2/v3/certs"),
        }
    }

    pub(crate) fn claims(sub: &str, email: &str) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": "https://accounts.google.com", "aud": CLIENT_ID, "sub": sub,
            "email": email, "email_verified": true, "name": "Google User",
            "iat": now, "exp": now + 3600,
        })
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        encode(&header, claims, &self.key).unwrap()
    }
}

pub(crate) async fn stack_with(google: &FakeGoogle) -> TestStack {
    let jwks_url = google.jwks_url.clone();
    TestStack::builder()
        .origin(move |settings| {
            settings.extra_env = vec![
                ("OXVAULT_GOOGLE_CLIENT_ID".into(), CLIENT_ID.into()),
                ("OXVAULT_GOOGLE_JWKS_URL".into(), jwks_url),
            ];
        })
        .start()
        .await
}

async fn sign_in(stack: &TestStack, id_token: &str) -> reqwest::Response {
    stack
        .post_json("/v1/auth/google", &json!({"id_token": id_token}))
        .await
}

async fn me(stack: &TestStack, response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    stack
        .request(Method::GET, "/v1/auth/me", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_google_token_creates_then_finds_the_same_user() {
    let google = FakeGoogle::start().await;
    let stack = stack_with(&google).await;
    let token = google.sign(&FakeGoogle::claims("g-1001", "Gina@Example.com"));

    let first = me(&stack, sign_in(&stack, &token).await).await;
    let second = me(&stack, sign_in(&stack, &token).await).await;

    assert_eq!(first["email"], "gina@example.com");
    assert_eq!(first["auth_method"], "google");
    assert_eq!(first["role"], "owner");
    assert_eq!(
        first["id"], second["id"],
        "the Google account maps to one user"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_google_sign_in_links_to_a_verified_account_and_its_password_keeps_working() {
    let google = FakeGoogle::start().await;
    let stack = stack_with(&google).await;
    let owner = stack.signup("owner@example.com").await;
    // Accepting a mailed invitation proves the address.
    let (session, linda_id) = stack.invite_member(&owner, "linda@example.com").await;

    let token = google.sign(&FakeGoogle::claims("g-2002", "linda@example.com"));
    let linked = me(&stack, sign_in(&stack, &token).await).await;

    assert_eq!(linked["id"], linda_id.as_str());
    stack.login("linda@example.com").await;
    let (status, _) = stack.me(&session.access_token).await;
    assert_eq!(status, StatusCode::OK, "a link ends no session");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_google_sign_in_takes_over_an_unverified_account_and_ends_what_its_maker_left() {
    let google = FakeGoogle::start().await;
    let stack = stack_with(&google).await;
    // Someone signs up the victim's address first and leaves ways back in.
    let squatter = stack.signup("victim@example.com").await;
    let squatter_id = stack.user_id(&squatter.access_token).await;
    let (status, key) = stack
        .call(
            Method::POST,
            "/v1/auth/api-keys",
            &squatter.access_token,
            Some(json!({"name": "backdoor"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, agent) = stack
        .call(
            Method::POST,
            "/v1/agents",
            &squatter.access_token,
            Some(json!({"name": "backdoor-bot"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");

    let token = google.sign(&FakeGoogle::claims("g-3003", "victim@example.com"));
    let owner = me(&stack, sign_in(&stack, &token).await).await;
    assert_eq!(
        owner["id"],
        squatter_id.as_str(),
        "the account (and its org) is kept"
    );

    let login = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": "victim@example.com", "password": oxvault_tests::PASSWORD}),
        )
        .await;
    assert_eq!(
        login.status(),
        StatusCode::UNAUTHORIZED,
        "the squatter's password is gone"
    );
    let (status, _) = stack.me(&squatter.access_token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the squatter's session ended"
    );
    let refreshed = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": squatter.refresh_token}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    let exchanged = stack
        .post_json(
            "/v1/auth/api-key-token",
            &json!({"api_key": key["api_key"]}),
        )
        .await;
    assert_eq!(
        exchanged.status(),
        StatusCode::UNAUTHORIZED,
        "the squatter's key is revoked"
    );
    let exchanged = stack
        .post_json(
            "/v1/auth/agent-token",
            &json!({"api_key": agent["api_key"]}),
        )
        .await;
    assert_eq!(
        exchanged.status(),
        StatusCode::UNAUTHORIZED,
        "the squatter's agent is off"
    );

    // Once taken over, the address is verified: the next sign-in is a plain one.
    let again = me(&stack, sign_in(&stack, &token).await).await;
    assert_eq!(again["id"], squatter_id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn id_tokens_that_are_not_for_us_or_not_from_google_are_refused() {
    let google = FakeGoogle::start().await;
    let stack = stack_with(&google).await;
    let valid = FakeGoogle::claims("g-3003", "eve@example.com");
    let with = |field: &str, value: Value| {
        let mut claims = valid.clone();
        claims[field] = value;
        claims
    };
    let impostor = FakeGoogle::start().await; // another key under the same kid

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(KID.to_owned());
    let cases = [
        (
            "wrong audience",
            google.sign(&with("aud", json!("someone-else"))),
        ),
        (
            "wrong issuer",
            google.sign(&with("iss", json!("https://evil.example"))),
        ),
        ("expired", google.sign(&with("exp", json!(now - 600)))),
        (
            "unverified email",
            google.sign(&with("email_verified", json!(false))),
        ),
        ("another key", impostor.sign(&valid)),
        (
            "HS256",
            encode(&hs256, &valid, &EncodingKey::from_secret(b"guess")).unwrap(),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (case, token) in cases {
        let response = sign_in(&stack, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["detail"], "invalid Google id_token", "{case}");
    }
    // And none of them created an account.
    let genuine = me(&stack, sign_in(&stack, &google.sign(&valid)).await).await;
    assert_eq!(genuine["email"], "eve@example.com");
}

#[tokio::test]
async fn google_sign_in_is_404_when_not_configured() {
    let stack = TestStack::start().await;
    let response = sign_in(&stack, "anything").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_google_name_of_any_length_becomes_a_bounded_display_name() {
    let google = FakeGoogle::start().await;
    let stack = stack_with(&google).await;
    let mut claims = FakeGoogle::claims("g-4004", "longname@example.com");
    claims["name"] = json!(format!("Very\nLong {}", "N".repeat(5_000)));

    let profile = me(&stack, sign_in(&stack, &google.sign(&claims)).await).await;

    let name = profile["display_name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 200, "{name}");
    assert!(!name.contains('\n'));
}
