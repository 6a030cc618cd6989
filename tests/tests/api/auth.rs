//! Human authentication through the edge: sign-up, login, refresh rotation, logout, password
//! change, profile. SECURITY.md cases 1, 2, 4, 5 and 9.

use oxvault_tests::{PASSWORD, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

#[tokio::test]
async fn signup_opens_a_session_and_makes_the_user_owner_of_a_new_org() {
    let stack = TestStack::shared().await;

    let session = stack.signup(&stack.email("ada@example.com")).await;
    let me = stack
        .request(Method::GET, "/v1/auth/me", &session.access_token)
        .send()
        .await
        .unwrap();

    assert_eq!(me.status(), StatusCode::OK);
    let profile: Value = me.json().await.unwrap();
    assert_eq!(profile["email"], stack.email("ada@example.com"));
    assert_eq!(profile["role"], "owner");
    assert_eq!(profile["auth_method"], "password");
    assert!(session.refresh_token.starts_with("ort_"));
}

#[tokio::test]
async fn emails_are_normalised_so_case_and_spaces_name_one_account() {
    let stack = TestStack::shared().await;
    stack.signup(&stack.email("Grace@Example.COM")).await;

    let again = stack
        .post_json(
            "/v1/auth/signup",
            &json!({"email": &format!("  {} ", stack.email("grace@example.com")), "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let login = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": stack.email("GRACE@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let stack = TestStack::shared().await;
    stack.signup(&stack.email("alan@example.com")).await;

    let wrong_password = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": stack.email("alan@example.com"), "password": "not the password"}),
        )
        .await;
    let unknown_email = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": stack.email("nobody@example.com"), "password": "not the password"}),
        )
        .await;

    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status(), StatusCode::UNAUTHORIZED);
    let a: Value = wrong_password.json().await.unwrap();
    let b: Value = unknown_email.json().await.unwrap();
    assert_eq!(a, b, "the bodies must not tell the two apart");
}

#[tokio::test]
async fn bad_signups_are_400_problems_not_500s() {
    let stack = TestStack::shared().await;
    for body in [
        json!({"email": "not-an-email", "password": PASSWORD}),
        json!({"email": stack.email("short@example.com"), "password": "short"}),
        json!({"email": stack.email("missing-password@example.com")}),
        json!("not an object"),
    ] {
        let response = stack.post_json("/v1/auth/signup", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 400);
    }
    let not_json = stack
        .client
        .post(stack.edge_url("/v1/auth/signup"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn server_owned_fields_in_a_signup_body_are_ignored() {
    let stack = TestStack::shared().await;
    let response = stack
        .post_json(
            "/v1/auth/signup",
            &json!({
                "email": stack.email("mallory@example.com"), "password": PASSWORD,
                "role": "member", "org_id": "00000000-0000-0000-0000-000000000001",
                "token_version": 99,
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = stack
        .request(Method::GET, "/v1/auth/me", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "owner");
    assert_ne!(me["org_id"], "00000000-0000-0000-0000-000000000001");
}

#[tokio::test]
async fn a_refresh_token_works_once_and_a_replay_revokes_the_whole_family() {
    let stack = TestStack::shared().await;
    let first = stack.signup(&stack.email("rotor@example.com")).await;

    let rotated = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": first.refresh_token}),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let newest_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let newest_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(newest_refresh, first.refresh_token);
    assert_eq!(
        stack
            .request(Method::GET, "/v1/auth/me", &newest_access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // The spent token again: refused, and the family is revoked.
    let replay = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": first.refresh_token}),
        )
        .await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    let newest = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": newest_refresh}),
        )
        .await;
    assert_eq!(
        newest.status(),
        StatusCode::UNAUTHORIZED,
        "the newest refresh token died too"
    );
    let access = stack
        .request(Method::GET, "/v1/auth/me", &newest_access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        access.status(),
        StatusCode::UNAUTHORIZED,
        "and so did its access token"
    );
}

#[tokio::test]
async fn logout_revokes_the_presented_session_at_once() {
    let stack = TestStack::shared().await;
    let session = stack.signup(&stack.email("leaver@example.com")).await;
    let other = stack.login(&stack.email("leaver@example.com")).await;

    let logout = stack
        .request(Method::DELETE, "/v1/auth/token", &session.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let after = stack
        .request(Method::GET, "/v1/auth/me", &session.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(after.headers()["www-authenticate"], "Bearer");
    let refresh = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    // Another session of the same user is untouched.
    let other_me = stack
        .request(Method::GET, "/v1/auth/me", &other.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_me.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_password_change_ends_every_session_the_callers_too_and_says_to_sign_in_again() {
    let stack = TestStack::shared().await;
    let current = stack.signup(&stack.email("changer@example.com")).await;
    let elsewhere = stack.login(&stack.email("changer@example.com")).await;

    let wrong = stack
        .request(Method::POST, "/v1/auth/change-password", &current.access_token)
        .json(&json!({"current_password": "wrong password", "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);

    let changed = stack
        .request(
            Method::POST,
            "/v1/auth/change-password",
            &current.access_token,
        )
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let answer: Value = changed.json().await.unwrap();
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("sign in again"),
        "{answer}"
    );

    for session in [&current, &elsewhere] {
        let old_access = stack
            .request(Method::GET, "/v1/auth/me", &session.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(old_access.status(), StatusCode::UNAUTHORIZED);
        let old_refresh = stack
            .post_json(
                "/v1/auth/refresh",
                &json!({"refresh_token": session.refresh_token}),
            )
            .await;
        assert_eq!(
            old_refresh.status(),
            StatusCode::UNAUTHORIZED,
            "every session ended"
        );
    }
    let old_password = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": stack.email("changer@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(old_password.status(), StatusCode::UNAUTHORIZED);
    let new_password = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": stack.email("changer@example.com"), "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(new_password.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_current_passwords_are_audited_and_limited_per_user() {
    let stack = TestStack::start().await;
    let holder = stack.signup(&stack.email("target@example.com")).await;
    let change = |current: &'static str| {
        stack
            .request(
                Method::POST,
                "/v1/auth/change-password",
                &holder.access_token,
            )
            .json(&json!({"current_password": current, "new_password": "attacker's choice here"}))
            .send()
    };

    for _ in 0..5 {
        assert_eq!(
            change("a guess").await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    // The sixth attempt in the window is refused before the password is even looked at,
    // the right one included.
    let limited = change(PASSWORD).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    let problem: Value = limited.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    stack.login(&stack.email("target@example.com")).await;

    let mut db = sqlx::PgConnection::connect(stack.database_url())
        .await
        .unwrap();
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'auth.failure' \
         AND details->>'method' = 'password_change' AND details->>'reason' = 'wrong_password'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(audited, 5, "each wrong current password is on the record");
}

#[tokio::test]
async fn the_jwks_publishes_the_hsm_signing_key() {
    let stack = TestStack::shared().await;

    let jwks: Value = stack
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    let public: Value = stack
        .get("/v1/auth/jwt-public-key")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(public["alg"], "EdDSA");
    assert!(public["public_key_base64"].is_string());
}

#[tokio::test]
async fn an_access_token_alone_cannot_mint_another() {
    let stack = TestStack::shared().await;
    let session = stack.signup(&stack.email("holder@example.com")).await;

    // What a thief with only the 15-minute token would try: no body, an empty one, and the
    // access token passed as if it were the refresh token.
    for body in [
        None,
        Some(json!({})),
        Some(json!({"refresh_token": session.access_token})),
    ] {
        let mut request = stack.request(Method::POST, "/v1/auth/refresh", &session.access_token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let problem: Value = response.json().await.unwrap();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{body:?} -> {status} {problem}"
        );
        assert_eq!(problem["status"], status.as_u16());
        assert!(problem.get("access_token").is_none());
    }
    let rotated = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;
    assert_eq!(
        rotated.status(),
        StatusCode::OK,
        "the refresh token still renews"
    );
}

/// SECURITY.md case 1, the time: an unknown address runs a dummy Argon2 verify, so it costs
/// what a wrong password costs. The fastest of interleaved tries is compared: load from the
/// tests running beside this one only ever adds time, so the minimum is the cost of the work
/// itself, and a missing dummy verify would make the unknown address several times faster.
/// (Medians failed once in CI with four tests at once on the shared stack.) The stack is the
/// test's own: on the shared one, other tests' sign-ups and logins hold the origin's few
/// Argon2 permits, and waiting for a permit made even the fastest of 15 tries differ by
/// half (CI saw 0.035 s against 0.054 s).
#[tokio::test]
async fn unknown_email_and_wrong_password_take_about_the_same_time() {
    const TRIES: usize = 25;
    let stack = TestStack::start().await;
    stack.signup(&stack.email("timed@example.com")).await;
    let login = |email: String| {
        let stack = &stack;
        async move {
            let started = std::time::Instant::now();
            let response = stack
                .post_json(
                    "/v1/auth/token",
                    &json!({"email": email, "password": "not the password"}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            started.elapsed()
        }
    };
    // One unknown address for every try, warmed like the known one: the edge's per-address
    // limiter object costs tens of milliseconds on its first use, so a fresh address per try
    // timed that object's start, not the origin (CI once saw 0.035 s known vs 0.060 s
    // unknown, the unknown side slower).
    let (known_email, unknown_email) = (
        stack.email("timed@example.com"),
        stack.email("nobody@example.com"),
    );
    login(known_email.clone()).await;
    login(unknown_email.clone()).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..TRIES {
        known.push(login(known_email.clone()).await);
        unknown.push(login(unknown_email.clone()).await);
    }
    let fastest = |times: &[std::time::Duration]| times.iter().min().map(|t| t.as_secs_f64());
    let (Some(known), Some(unknown)) = (fastest(&known), fastest(&unknown)) else {
        panic!("no tries were timed");
    };
    let ratio = known.max(unknown) / known.min(unknown);
    assert!(
        ratio < 1.5,
        "wrong password {known:.4} s vs unknown address {unknown:.4} s (fastest of {TRIES})"
    );
}

#[tokio::test]
async fn the_longest_display_name_still_names_a_valid_org() {
    let stack = TestStack::shared().await;
    let response = stack
        .post_json(
            "/v1/auth/signup",
            &json!({"email": stack.email("long@example.com"), "password": PASSWORD, "display_name": "L".repeat(200)}),
        )
        .await;
    // "<name>'s org" would be 206 characters; an org name may have 200.
    assert_eq!(response.status(), StatusCode::OK);
}
