//! SECURITY.md case 9 for the bodies that create things: a secret PUT, a vault, a share. A
//! body naming fields the server owns (`id`, `org_id`, `created_by`, `version`,
//! `access_count`, ...) never has them applied: the created thing carries the server's values.

use oxvault_tests::TestStack;
use oxvault_tests::shares::in_an_hour;
use reqwest::{Method, StatusCode};
use serde_json::json;

const FOREIGN: &str = "11111111-2222-4333-8444-555555555555";

#[tokio::test]
async fn server_owned_fields_in_secret_vault_and_share_bodies_are_not_applied() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("owner@example.com")).await;
    let token = &owner.access_token;
    let (_, me) = stack.me(token).await;

    let (status, vault) = stack
        .call(
            Method::POST,
            "/v1/vaults",
            token,
            Some(
                json!({"name": "v", "id": FOREIGN, "org_id": FOREIGN, "created_by": FOREIGN,
                        "created_at": "2000-01-01T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vault}");
    assert_ne!(vault["id"], FOREIGN);
    assert_ne!(vault["org_id"], FOREIGN);
    assert_eq!(vault["created_by"], me["id"]);
    assert_ne!(vault["created_at"], "2000-01-01T00:00:00Z");
    let vault_id = vault["id"].as_str().unwrap();

    let (status, secret) = stack
        .put_secret(
            token,
            vault_id,
            "api/key",
            json!({"value": "v1", "id": FOREIGN, "version": 42, "org_id": FOREIGN,
                   "vault_id": FOREIGN, "access_count": 7, "created_by": FOREIGN,
                   "path": "other/path"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{secret}");
    assert_eq!(secret["version"], 1);
    assert_eq!(secret["path"], "api/key");
    assert_ne!(secret["id"], FOREIGN);
    let secret_id = secret["id"].as_str().unwrap();

    let (status, share) = stack
        .create_share(
            token,
            secret_id,
            json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour(),
                   "max_access_count": 1, "id": FOREIGN, "access_count": 5,
                   "created_by": FOREIGN, "org_id": FOREIGN, "secret_id": FOREIGN}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    assert_ne!(share["id"], FOREIGN);
    let share_id = share["id"].as_str().unwrap();
    assert_eq!(stack.share_access_count(token, share_id).await, 0);
    let read = stack.get(&format!("/v1/share/{share_id}")).await;
    assert_eq!(read.status(), StatusCode::OK, "the one view is still there");
}
