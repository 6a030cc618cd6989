//! The share page `GET /s/{id}` rendered by the edge, and share lookups through the edge:
//! the uniform unavailable state (404) with the security headers, no view used up by loading
//! the page (SECURITY 19), and the passphrase moved from a GET's JSON body into the
//! `X-Share-Passphrase` header, never accepted in the URL.

use oxvault_tests::shares::in_an_hour;
use oxvault_tests::{TestStack, client_from};
use reqwest::StatusCode;
use serde_json::{Value, json};

const VALUE: &str = "sk-page-test-51c0";
const UNAVAILABLE: &str = "This link has expired, was used up, or does not exist.";

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_owned()
}

/// The CSP nonce of a page: the value after `'nonce-` in its script-src.
fn csp_nonce(csp: &str) -> String {
    let start = csp.find("script-src 'nonce-").expect("script nonce") + "script-src 'nonce-".len();
    csp[start..].split('\'').next().expect("nonce").to_owned()
}

fn assert_security_headers(response: &reqwest::Response) {
    assert_eq!(header(response, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(response, "cache-control"), "no-store");
    assert_eq!(header(response, "referrer-policy"), "no-referrer");
    assert_eq!(header(response, "x-frame-options"), "DENY");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert!(header(response, "x-robots-tag").contains("noindex"));
    let csp = header(response, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_link_renders_the_uniform_unavailable_state_with_security_headers() {
    let stack = TestStack::shared().await;

    let mut pages = Vec::new();
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-share-id".to_owned(),
    ] {
        let response = stack.get(&format!("/s/{id}")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
        assert_security_headers(&response);
        let nonce = csp_nonce(&header(&response, "content-security-policy"));
        let html = response.text().await.expect("page");
        assert!(html.contains(UNAVAILABLE), "{html}");
        assert!(html.contains(r#"id="state""#));
        assert!(!html.contains(r#"id="reveal""#));
        // Apart from the nonce, every unavailable page is the same page.
        pages.push(html.replace(&nonce, "NONCE"));
    }
    assert_eq!(pages[0], pages[1]);

    let response = stack
        .client
        .head(stack.edge_url(&format!("/s/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&response);
    assert!(response.text().await.expect("body").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passphrase_in_a_url_is_refused_before_the_origin() {
    let stack = TestStack::shared().await;
    let id = uuid::Uuid::new_v4();
    for path in [
        format!("/s/{id}?passphrase=hunter2"),
        format!("/v1/share/{id}?passphrase=hunter2"),
        format!("/v1/share/{id}?X-Share-Passphrase=hunter2"),
        format!("/v1/share/{id}/status?passphrase=hunter2"),
    ] {
        let response = stack.get(&path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = response.json().await.expect("problem");
        assert_eq!(body["type"], "urn:oxvault:problem:bad-request");
    }
    assert!(!stack.origin_log().contains("hunter2"));

    // A body that is not `{"passphrase": "..."}` is the caller's mistake, not a guess.
    let response = stack
        .client
        .get(stack.edge_url(&format!("/v1/share/{id}")))
        .header("content-type", "application/json")
        .body(r#"{"passphrase": 42}"#)
        .send()
        .await
        .expect("lookup");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // HEAD would use up a view and show nothing.
    let response = stack
        .client
        .head(stack.edge_url(&format!("/v1/share/{id}")))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// `GET /v1/share/{id}` with the passphrase in a JSON body, as 1Claw clients send it.
async fn lookup_with_body(stack: &TestStack, id: &str, passphrase: &str) -> (StatusCode, Value) {
    let response = stack
        .client
        .get(stack.edge_url(&format!("/v1/share/{id}")))
        .json(&json!({"passphrase": passphrase}))
        .send()
        .await
        .expect("lookup");
    let status = response.status();
    (status, response.json().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn loading_a_live_links_page_uses_no_view_and_a_body_passphrase_opens_it() {
    let stack = TestStack::shared().await;
    let passphrase = "p\u{e4}ss phr\u{e4}se \u{1f511}";
    let (token, share) = stack
        .share_new_secret(
            &stack.email("page-owner@example.com"),
            VALUE,
            json!({
                "recipient_type": "anyone_with_link",
                "expires_at": in_an_hour(),
                "max_access_count": 2,
                "passphrase": passphrase,
            }),
        )
        .await;
    let id = share["id"].as_str().expect("share id");
    let url = share["share_url"].as_str().expect("share_url");
    assert_eq!(url, stack.edge_url(&format!("/s/{id}")));

    // Link previewers fetch the page, sometimes more than once.
    let mut nonces = Vec::new();
    for _ in 0..3 {
        let response = stack.client.get(url).send().await.expect("page");
        assert_eq!(response.status(), StatusCode::OK);
        assert_security_headers(&response);
        let nonce = csp_nonce(&header(&response, "content-security-policy"));
        let html = response.text().await.expect("html");
        assert!(html.contains(&format!(r#"<script nonce="{nonce}">"#)));
        assert!(html.contains(r#"id="reveal""#));
        assert!(html.contains(r#"id="passphrase""#));
        assert!(html.contains(&format!(r#"data-share-id="{id}""#)));
        assert!(!html.contains(VALUE));
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per response");
    let head = stack.client.head(url).send().await.expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(stack.share_access_count(&token, id).await, 0);

    // A wrong passphrase in the body: the uniform 404, and no view used.
    let (status, _) = lookup_with_body(&stack, id, "wrong").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stack.share_access_count(&token, id).await, 0);

    // The right one, non-ASCII included, reaches the origin intact through the header.
    let (status, body) = lookup_with_body(&stack, id, passphrase).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], VALUE);
    assert_eq!(stack.share_access_count(&token, id).await, 1);
    assert!(!stack.origin_log().contains(passphrase));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_sees_the_client_address_and_public_url_the_edge_vouches_for() {
    let stack = TestStack::builder()
        .edge(|edge| {
            edge.var("PUBLIC_URL", "https://vault.example.test");
        })
        .start()
        .await;
    let (_token, share) = stack
        .share_new_secret(
            &stack.email("page-owner@example.com"),
            VALUE,
            json!({
                "recipient_type": "anyone_with_link",
                "expires_at": in_an_hour(),
                "ip_allowlist": ["127.0.0.5"],
            }),
        )
        .await;
    let id = share["id"].as_str().expect("share id");
    // The link is written with the public URL the edge reported, not the edge's own address.
    assert_eq!(
        share["share_url"],
        format!("https://vault.example.test/s/{id}")
    );

    // The allowlist is checked against the address the edge saw.
    let path = format!("/v1/share/{id}");
    let response = client_from(6)
        .get(stack.edge_url(&path))
        .send()
        .await
        .expect("lookup");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = client_from(5)
        .get(stack.edge_url(&path))
        .send()
        .await
        .expect("lookup");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("share");
    assert_eq!(body["value"], VALUE);
}
