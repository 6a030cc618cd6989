//! The org through the edge: members, roles, invitations. SECURITY.md cases 7 (another org's
//! ids answer 404), 9 (bodies cannot set server-owned fields) and 10 (members cannot manage;
//! the last owner stays).

use oxvault_tests::{PASSWORD, Session, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn set_role(
    stack: &TestStack,
    token: &str,
    user_id: &str,
    role: &str,
) -> (StatusCode, Value) {
    let path = format!("/v1/org/members/{user_id}");
    stack
        .call(Method::PATCH, &path, token, Some(json!({"role": role})))
        .await
}

async fn remove(stack: &TestStack, token: &str, user_id: &str) -> StatusCode {
    let path = format!("/v1/org/members/{user_id}");
    stack.call(Method::DELETE, &path, token, None).await.0
}

/// The caller's user id.
async fn user_id(stack: &TestStack, session: &Session) -> String {
    let (status, profile) = stack.me(&session.access_token).await;
    assert_eq!(status, StatusCode::OK);
    profile["id"].as_str().unwrap().to_owned()
}

/// An owner (new org) and a second user invited into it with `role`: signed up, then moved
/// in by accepting the mailed token.
async fn owner_and_invited(stack: &TestStack, role: &str) -> (Session, Session) {
    let owner = stack.signup(&stack.email("owner@example.com")).await;
    let (status, _) = stack
        .invite(
            &owner.access_token,
            &stack.email("second@example.com"),
            role,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = stack.signup(&stack.email("second@example.com")).await;
    let token = stack
        .invitation_token(&stack.email("second@example.com"))
        .await;
    let second = stack.accept_invitation(&second, &token).await;
    (owner, second)
}

async fn accept(stack: &TestStack, session: &Session, token: &str) -> (StatusCode, Value) {
    stack
        .call(
            Method::POST,
            "/v1/org/invitations/accept",
            &session.access_token,
            Some(json!({ "token": token })),
        )
        .await
}

#[tokio::test]
async fn an_invited_address_joins_only_by_accepting_the_mailed_token_while_signed_in() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("founder@example.com")).await;
    let (_, owner_profile) = stack.me(&owner.access_token).await;

    let (status, body) = stack
        .invite(
            &owner.access_token,
            &format!("  {} ", stack.email("Eve@Example.COM")),
            "admin",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["email"],
        stack.email("eve@example.com"),
        "the address is normalised"
    );
    assert!(body["message"].is_string());
    assert!(
        !body.to_string().contains("oiv_"),
        "the token goes to the mailbox only, never to the inviter"
    );

    // Signing up alone is not joining: anyone may type the invited address.
    let eve = stack.signup(&stack.email("eve@example.com")).await;
    let (_, profile) = stack.me(&eve.access_token).await;
    assert_eq!(profile["role"], "owner", "a sign-up makes its own org");
    assert_ne!(profile["org_id"], owner_profile["org_id"]);

    let token = stack
        .invitation_token(&stack.email("eve@example.com"))
        .await;
    let (status, _) = accept(&stack, &eve, "oiv_not-the-token").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, joined) = accept(&stack, &eve, &token).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let (status, _) = stack.me(&eve.access_token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old org's session ended"
    );
    let fresh = joined["access_token"].as_str().unwrap();
    let (status, profile) = stack.me(fresh).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["role"], "admin");
    assert_eq!(profile["org_id"], owner_profile["org_id"]);

    let again = Session {
        email: stack.email("eve@example.com"),
        access_token: fresh.to_owned(),
        refresh_token: String::new(),
    };
    let (status, _) = accept(&stack, &again, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a token redeems once");
}

#[tokio::test]
async fn a_squatter_cannot_redeem_an_invitation_for_someone_elses_address() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("founder@example.com")).await;
    let (_, owner_profile) = stack.me(&owner.access_token).await;
    stack
        .invite(
            &owner.access_token,
            &stack.email("victim@example.com"),
            "admin",
        )
        .await;
    let token = stack
        .invitation_token(&stack.email("victim@example.com"))
        .await;

    // Even holding the token, another account cannot use it: it names another address.
    let squatter = stack.signup(&stack.email("squatter@example.com")).await;
    let (status, _) = accept(&stack, &squatter, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, profile) = stack.me(&squatter.access_token).await;
    assert_ne!(profile["org_id"], owner_profile["org_id"]);

    // The refusal left the invitation open for its owner.
    let victim = stack.signup(&stack.email("victim@example.com")).await;
    let victim = stack.accept_invitation(&victim, &token).await;
    let (_, profile) = stack.me(&victim.access_token).await;
    assert_eq!(profile["org_id"], owner_profile["org_id"]);
}

#[tokio::test]
async fn another_orgs_open_invitation_blocks_nobody_and_a_busy_org_cannot_be_left_by_accepting() {
    let stack = TestStack::shared().await;
    let first = stack.signup(&stack.email("first@example.com")).await;
    let second = stack.signup(&stack.email("second-org@example.com")).await;
    let (status, _) = stack
        .invite(
            &first.access_token,
            &stack.email("pat@example.com"),
            "member",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stack
        .invite(
            &second.access_token,
            &stack.email("pat@example.com"),
            "member",
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an earlier invitation from another org locks nobody out"
    );
    let second_token = stack
        .invitation_token(&stack.email("pat@example.com"))
        .await;

    // Pat's own org holds a vault: accepting would strand it.
    let pat = stack.signup(&stack.email("pat@example.com")).await;
    stack.create_vault(&pat.access_token, "mine").await;
    let (status, body) = accept(&stack, &pat, &second_token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["status"], 409);
    let (status, _) = stack.me(&pat.access_token).await;
    assert_eq!(status, StatusCode::OK, "a refused accept changes nothing");
}

#[tokio::test]
async fn any_user_of_the_org_lists_its_members() {
    let stack = TestStack::shared().await;
    let (owner, member) = owner_and_invited(&stack, "member").await;

    for session in [&owner, &member] {
        let (status, body) = stack
            .call(Method::GET, "/v1/org/members", &session.access_token, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let members = body["members"].as_array().unwrap();
        assert_eq!(members.len(), 2);
        let roles: Vec<(&str, &str)> = members
            .iter()
            .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
            .collect();
        assert!(roles.contains(&(&stack.email("owner@example.com"), "owner")));
        assert!(roles.contains(&(&stack.email("second@example.com"), "member")));
        for m in members {
            for field in ["id", "display_name", "auth_method", "created_at"] {
                assert!(m[field].is_string(), "{field} missing in {m}");
            }
            assert!(m.get("password_hash").is_none());
        }
    }
}

#[tokio::test]
async fn a_member_can_neither_invite_nor_change_roles_nor_remove_anyone() {
    let stack = TestStack::shared().await;
    let (owner, member) = owner_and_invited(&stack, "member").await;
    let owner_id = user_id(&stack, &owner).await;
    let member_id = user_id(&stack, &member).await;
    let token = &member.access_token;

    let (status, _) = stack
        .invite(token, &stack.email("friend@example.com"), "member")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = set_role(&stack, token, &member_id, "admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no promoting oneself");
    assert_eq!(problem["status"], 403);
    let (status, _) = set_role(&stack, token, &owner_id, "member").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        remove(&stack, token, &owner_id).await,
        StatusCode::FORBIDDEN
    );

    let (_, profile) = stack.me(&owner.access_token).await;
    assert_eq!(profile["role"], "owner", "nothing changed");
}

#[tokio::test]
async fn an_admin_manages_members_but_cannot_grant_remove_or_invite_an_owner() {
    let stack = TestStack::shared().await;
    let (owner, admin) = owner_and_invited(&stack, "admin").await;
    let owner_id = user_id(&stack, &owner).await;
    let (_, third_id) = stack
        .invite_member(&owner, &stack.email("third@example.com"))
        .await;
    let token = &admin.access_token;

    let (status, _) = set_role(&stack, token, &third_id, "owner").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an admin cannot make an owner"
    );
    let (status, _) = set_role(&stack, token, &owner_id, "member").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an admin cannot demote an owner"
    );
    assert_eq!(
        remove(&stack, token, &owner_id).await,
        StatusCode::FORBIDDEN
    );
    let (status, _) = stack
        .invite(token, &stack.email("boss@example.com"), "owner")
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an admin cannot invite an owner"
    );

    let (status, body) = set_role(&stack, token, &third_id, "admin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], third_id.as_str());
    assert_eq!(body["role"], "admin");
    let (status, _) = stack
        .invite(token, &stack.email("fourth@example.com"), "member")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let stack = TestStack::shared().await;
    let (owner, second) = owner_and_invited(&stack, "admin").await;
    let owner_id = user_id(&stack, &owner).await;
    let second_id = user_id(&stack, &second).await;

    let (status, problem) = set_role(&stack, &owner.access_token, &owner_id, "admin").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"].as_str().unwrap().contains("last owner"),
        "{problem}"
    );
    assert_eq!(
        remove(&stack, &owner.access_token, &owner_id).await,
        StatusCode::CONFLICT
    );
    let (status, profile) = stack.me(&owner.access_token).await;
    assert_eq!(status, StatusCode::OK, "the refused change voided nothing");
    assert_eq!(profile["role"], "owner");

    // With a second owner, the first may step down.
    let (status, _) = set_role(&stack, &owner.access_token, &second_id, "owner").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = set_role(&stack, &owner.access_token, &owner_id, "member").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "member");
}

#[tokio::test]
async fn an_owner_may_leave_while_another_owner_remains() {
    let stack = TestStack::shared().await;
    let (owner, second) = owner_and_invited(&stack, "owner").await;
    let owner_id = user_id(&stack, &owner).await;

    assert_eq!(
        remove(&stack, &owner.access_token, &owner_id).await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = stack
        .call(Method::GET, "/v1/org/members", &second.access_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["members"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_removed_member_is_locked_out_at_once() {
    let stack = TestStack::shared().await;
    let (owner, member) = owner_and_invited(&stack, "member").await;
    let member_id = user_id(&stack, &member).await;

    assert_eq!(
        remove(&stack, &owner.access_token, &member_id).await,
        StatusCode::NO_CONTENT
    );

    let (status, _) = stack.me(&member.access_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the access token died");
    let refresh = stack
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": member.refresh_token}),
        )
        .await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    let login = stack
        .post_json(
            "/v1/auth/token",
            &json!({"email": stack.email("second@example.com"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        remove(&stack, &owner.access_token, &member_id).await,
        StatusCode::NOT_FOUND,
        "gone is gone"
    );
}

#[tokio::test]
async fn a_role_change_voids_the_members_tokens_and_a_new_login_carries_the_new_role() {
    let stack = TestStack::shared().await;
    let (owner, member) = owner_and_invited(&stack, "member").await;
    let member_id = user_id(&stack, &member).await;

    let (status, body) = set_role(&stack, &owner.access_token, &member_id, "admin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "admin");
    assert_eq!(body["email"], stack.email("second@example.com"));

    let (status, _) = stack.me(&member.access_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token died");
    let again = stack.login(&stack.email("second@example.com")).await;
    let (status, profile) = stack.me(&again.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["role"], "admin");
    let (status, _) = stack
        .invite(
            &again.access_token,
            &stack.email("new@example.com"),
            "member",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the new role's powers apply");
}

#[tokio::test]
async fn another_orgs_member_ids_answer_404() {
    let stack = TestStack::shared().await;
    let (alice, bob) = owner_and_invited(&stack, "member").await;
    let alice_id = user_id(&stack, &alice).await;
    let bob_id = user_id(&stack, &bob).await;
    let mallory = stack.signup(&stack.email("mallory@example.com")).await;
    let token = &mallory.access_token;

    for id in [&alice_id, &bob_id] {
        let (status, problem) = set_role(&stack, token, id, "member").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "PATCH {id}");
        assert_eq!(problem["status"], 404);
        assert_eq!(remove(&stack, token, id).await, StatusCode::NOT_FOUND);
    }
    // Unknown and malformed ids answer the same.
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid", "..%2F..%2Fetc"] {
        let (status, _) = set_role(&stack, token, id, "member").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "PATCH {id}");
        assert_eq!(remove(&stack, token, id).await, StatusCode::NOT_FOUND);
    }

    let (_, body) = stack
        .call(Method::GET, "/v1/org/members", token, None)
        .await;
    assert_eq!(body["members"].as_array().unwrap().len(), 1, "only its own");
    let (status, profile) = stack.me(&bob.access_token).await;
    assert_eq!(status, StatusCode::OK, "bob is untouched");
    assert_eq!(profile["role"], "member");
}

#[tokio::test]
async fn invitations_refuse_members_and_bad_input_and_a_reinvite_kills_the_old_token() {
    let stack = TestStack::shared().await;
    let owner = stack.signup(&stack.email("boss@example.com")).await;
    let token = &owner.access_token;

    let (status, _) = stack
        .invite(token, &stack.email("boss@example.com"), "admin")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already a member");
    let (status, _) = stack.invite(token, "not-an-email", "member").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = stack
        .invite(token, &stack.email("a@example.com"), "root")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Without a role the invitee becomes a member; re-inviting replaces the org's own invite.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (status, _) = stack
            .call(
                Method::POST,
                "/v1/org/invite",
                token,
                Some(json!({"email": stack.email("newbie@example.com")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        tokens.push(
            stack
                .invitation_token(&stack.email("newbie@example.com"))
                .await,
        );
    }
    let (old_token, new_token) = (&tokens[0], &tokens[1]);
    assert_ne!(old_token, new_token);

    let newbie = stack.signup(&stack.email("newbie@example.com")).await;
    let (status, _) = accept(&stack, &newbie, old_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the replaced token is dead");
    let newbie = stack.accept_invitation(&newbie, new_token).await;
    let (_, profile) = stack.me(&newbie.access_token).await;
    let (_, boss) = stack.me(token).await;
    assert_eq!(profile["role"], "member");
    assert_eq!(profile["org_id"], boss["org_id"]);
}

#[tokio::test]
async fn server_owned_fields_in_member_bodies_are_ignored() {
    let stack = TestStack::shared().await;
    let (owner, member) = owner_and_invited(&stack, "member").await;
    let member_id = user_id(&stack, &member).await;
    let (_, before) = stack.me(&owner.access_token).await;

    let (status, body) = stack
        .call(
            Method::PATCH,
            &format!("/v1/org/members/{member_id}"),
            &owner.access_token,
            Some(json!({
                "role": "admin", "email": stack.email("hijack@example.com"),
                "org_id": "00000000-0000-0000-0000-000000000001", "token_version": 0,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], stack.email("second@example.com"));
    let again = stack.login(&stack.email("second@example.com")).await;
    let (_, profile) = stack.me(&again.access_token).await;
    assert_eq!(profile["org_id"], before["org_id"]);
    assert_eq!(profile["role"], "admin");
}

#[tokio::test]
async fn invitation_mails_to_one_address_are_limited_whoever_sends_them() {
    let stack = TestStack::shared().await;
    let first = stack.signup(&stack.email("first@example.com")).await;
    let second = stack.signup(&stack.email("second-org@example.com")).await;
    for _ in 0..2 {
        let (status, _) = stack
            .invite(
                &first.access_token,
                &stack.email("target@example.com"),
                "member",
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = stack
        .invite(
            &second.access_token,
            &stack.email("target@example.com"),
            "member",
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Three mails this hour: a fourth, from either org, waits.
    for sender in [&first, &second] {
        let response = stack
            .request(Method::POST, "/v1/org/invite", &sender.access_token)
            .json(&json!({"email": stack.email("target@example.com"), "role": "member"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 429);
    }
    let (status, _) = stack
        .invite(
            &first.access_token,
            &stack.email("someone-else@example.com"),
            "member",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "other addresses are not held up");
}
