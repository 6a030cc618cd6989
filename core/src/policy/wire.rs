//! The JSON shapes of the policy endpoints. Apart from the evaluated [`Policy`](super::Policy)
//! because the API carries what evaluation never reads (principal, vault, author, timestamps).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::evaluation::Conditions;
use super::pattern::PathPattern;
use super::permission::{Effect, Permission};
use crate::ids::{PolicyId, UserId, VaultId};

/// The kind of principal a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalType {
    User,
    Agent,
}

impl PrincipalType {
    /// The wire label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
        }
    }
}

/// `null` reads as the default, like a missing field: clients send either for "not set".
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `POST /v1/vaults/{vault_id}/policies`. Unknown fields (1Claw's `tx_conditions`,
/// `policy_schema_version`, ... and any server-owned field such as `id` or `created_by`) are
/// ignored; unknown keys inside `conditions` are refused (see [`Conditions`]).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreatePolicyRequest {
    pub principal_type: PrincipalType,
    pub principal_id: Uuid,
    pub secret_path_pattern: PathPattern,
    pub permissions: Vec<Permission>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub effect: Effect,
    /// 1Claw documents a minimum of 0.
    #[serde(default, deserialize_with = "null_as_default")]
    pub priority: i32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub conditions: Conditions,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PUT /v1/vaults/{vault_id}/policies/{policy_id}`: absent (or `null`) fields stay as they
/// are. The pattern and the principal of a policy never change; replace the policy instead.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdatePolicyRequest {
    #[serde(default)]
    pub permissions: Option<Vec<Permission>>,
    #[serde(default)]
    pub conditions: Option<Conditions>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub effect: Option<Effect>,
    #[serde(default)]
    pub priority: Option<i32>,
}

/// A policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyResponse {
    pub id: PolicyId,
    pub vault_id: VaultId,
    pub principal_type: PrincipalType,
    pub principal_id: Uuid,
    pub secret_path_pattern: PathPattern,
    pub permissions: Vec<Permission>,
    pub effect: Effect,
    pub priority: i32,
    pub conditions: Conditions,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user who made the policy; `None` once that user is gone.
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/vaults/{vault_id}/policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyListResponse {
    pub policies: Vec<PolicyResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::fixtures::{id, pattern, window};

    #[test]
    fn a_create_request_as_the_official_sdk_sends_it_is_read_with_defaults() {
        let json = r#"{
            "principal_type": "agent",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "prod/**",
            "permissions": ["read"],
            "tx_conditions": null,
            "policy_schema_version": 2
        }"#;
        let request: CreatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.principal_type, PrincipalType::Agent);
        assert_eq!(request.secret_path_pattern, pattern("prod/**"));
        assert_eq!(request.permissions, [Permission::Read]);
        assert_eq!(request.effect, Effect::Allow);
        assert_eq!(request.priority, 0);
        assert!(request.conditions.is_empty());
        assert_eq!(request.expires_at, None);
    }

    #[test]
    fn a_create_request_reads_every_optional_field_and_takes_null_as_unset() {
        let json = r#"{
            "principal_type": "user",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "db/*",
            "permissions": ["read", "write", "delete", "rotate", "share"],
            "effect": "deny",
            "priority": 7,
            "conditions": {
                "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"],
                "time_window": {"after": "09:00", "before": "17:00", "timezone": "+02:00"}
            },
            "expires_at": "2030-01-02T03:04:05Z"
        }"#;
        let request: CreatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.permissions, Permission::ALL);
        assert_eq!(request.effect, Effect::Deny);
        assert_eq!(request.priority, 7);
        assert_eq!(
            request.conditions.ip_allowlist.as_ref().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            request.conditions.time_window,
            Some(window("09:00", "17:00", "+02:00"))
        );
        assert_eq!(
            request.expires_at.map(|at| at.timestamp()),
            Some(1_893_553_445)
        );

        let nulls = r#"{
            "principal_type": "user",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "db/*",
            "permissions": [],
            "effect": null, "priority": null, "conditions": null, "expires_at": null
        }"#;
        let request: CreatePolicyRequest = serde_json::from_str(nulls).unwrap();
        assert_eq!(request.effect, Effect::Allow);
        assert_eq!(request.priority, 0);
        assert!(request.conditions.is_empty());
    }

    #[test]
    fn server_owned_fields_in_a_create_request_are_ignored() {
        let json = r#"{
            "id": "00000000-0000-0000-0000-000000000001",
            "vault_id": "00000000-0000-0000-0000-000000000002",
            "created_by": "00000000-0000-0000-0000-000000000003",
            "created_at": "2020-01-01T00:00:00Z",
            "principal_type": "user",
            "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
            "secret_path_pattern": "db/*",
            "permissions": ["read"]
        }"#;
        // The type has no such fields, so nothing a client sends can set them.
        let request: CreatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.secret_path_pattern.as_str(), "db/*");
        let update: UpdatePolicyRequest = serde_json::from_str(json).unwrap();
        assert_eq!(update.permissions, Some(vec![Permission::Read]));
    }

    #[test]
    fn bad_patterns_permissions_principals_and_conditions_make_a_create_request_fail() {
        let body = |pattern: &str, permissions: &str, principal: &str, conditions: &str| {
            format!(
                r#"{{"principal_type": "{principal}",
                    "principal_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
                    "secret_path_pattern": "{pattern}", "permissions": {permissions},
                    "conditions": {conditions}}}"#
            )
        };
        let ok = body("db/*", r#"["read"]"#, "user", "{}");
        assert!(serde_json::from_str::<CreatePolicyRequest>(&ok).is_ok());
        for bad in [
            body("db/../*", r#"["read"]"#, "user", "{}"),
            body("db/a*", r#"["read"]"#, "user", "{}"),
            body("db/*", r#"["admin"]"#, "user", "{}"),
            body("db/*", r#"["READ"]"#, "user", "{}"),
            body("db/*", r#"["read"]"#, "org", "{}"),
            body(
                "db/*",
                r#"["read"]"#,
                "user",
                r#"{"ip_allowlist": ["nope"]}"#,
            ),
            body("db/*", r#"["read"]"#, "user", r#"{"mfa": true}"#),
        ] {
            assert!(
                serde_json::from_str::<CreatePolicyRequest>(&bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_empty_update_changes_nothing() {
        let update: UpdatePolicyRequest = serde_json::from_str("{}").unwrap();
        assert!(update.permissions.is_none());
        assert!(update.conditions.is_none());
        assert!(update.expires_at.is_none());
        assert!(update.effect.is_none());
        assert!(update.priority.is_none());
        let update: UpdatePolicyRequest =
            serde_json::from_str(r#"{"effect": "deny", "priority": 3}"#).unwrap();
        assert_eq!(update.effect, Some(Effect::Deny));
        assert_eq!(update.priority, Some(3));
    }

    #[test]
    fn a_policy_response_has_1claw_field_names() {
        let response = PolicyResponse {
            id: id(1),
            vault_id: VaultId::from_uuid(Uuid::from_u128(2)),
            principal_type: PrincipalType::Agent,
            principal_id: Uuid::from_u128(3),
            secret_path_pattern: pattern("db/**"),
            permissions: vec![Permission::Read, Permission::Rotate],
            effect: Effect::Allow,
            priority: 0,
            conditions: Conditions::default(),
            expires_at: None,
            created_by: Some(UserId::from_uuid(Uuid::from_u128(4))),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let value = serde_json::to_value(PolicyListResponse {
            policies: vec![response.clone()],
            next_cursor: None,
        })
        .unwrap();
        assert!(value["next_cursor"].is_null(), "{value}");
        let policy = &value["policies"][0];
        assert_eq!(policy["id"], "00000000-0000-0000-0000-000000000001");
        assert_eq!(policy["vault_id"], "00000000-0000-0000-0000-000000000002");
        assert_eq!(policy["principal_type"], "agent");
        assert_eq!(
            policy["principal_id"],
            "00000000-0000-0000-0000-000000000003"
        );
        assert_eq!(policy["secret_path_pattern"], "db/**");
        assert_eq!(policy["permissions"], serde_json::json!(["read", "rotate"]));
        assert_eq!(policy["effect"], "allow");
        assert_eq!(policy["priority"], 0);
        assert_eq!(policy["conditions"], serde_json::json!({}));
        assert!(policy["expires_at"].is_null());
        assert_eq!(policy["created_by"], "00000000-0000-0000-0000-000000000004");
        assert_eq!(policy["created_at"], "2023-11-14T22:13:20Z");
        let back: PolicyResponse = serde_json::from_value(policy.clone()).unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn permissions_effects_and_principal_types_use_their_lowercase_labels() {
        for permission in Permission::ALL {
            assert_eq!(
                serde_json::to_value(permission).unwrap(),
                permission.as_str()
            );
            assert_eq!(permission.to_string(), permission.as_str());
        }
        assert_eq!(
            serde_json::to_value(Effect::Deny).unwrap(),
            Effect::Deny.as_str()
        );
        assert_eq!(Effect::default(), Effect::Allow);
        assert_eq!(
            serde_json::to_value(PrincipalType::User).unwrap(),
            PrincipalType::User.as_str()
        );
    }

    // Property tests of what a policy is read from, over any text a tenant can send.
    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        // A create request of random fields: reading it never panics, and what is read
        // serialises back to what reads the same.
        #[test]
        fn a_read_policy_request_keeps_its_fields_checked(
            pattern in prop_oneof!["[a-z*/.]{0,8}", crate::any_text()],
            permissions in vec(prop_oneof![
                Just("read".to_owned()), Just("share".to_owned()), "[a-zA-Z]{0,6}",
            ], 0..3),
            allowlist in proptest::option::of(vec(prop_oneof![
                "10\\.[0-9]{1,3}\\.0\\.0/[0-9]{1,2}", "[0-9a-f:./]{0,12}",
            ], 0..3)),
            window in proptest::option::of((
                "[0-2][0-9]:[0-5][0-9]", "[0-2][0-9]:[0-6][0-9]",
                prop_oneof![Just("UTC".to_owned()), "[+-][01][0-9]:[0-5][0-9]", "[A-Za-z/]{0,12}"],
            )),
            extra_condition in proptest::option::of("[a-z_]{1,8}"),
            priority in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from)],
        ) {
            let mut conditions = serde_json::Map::new();
            if let Some(allowlist) = allowlist {
                conditions.insert("ip_allowlist".into(), json!(allowlist));
            }
            if let Some((after, before, timezone)) = window {
                conditions.insert(
                    "time_window".into(),
                    json!({"after": after, "before": before, "timezone": timezone}),
                );
            }
            if let Some(name) = extra_condition {
                conditions.insert(name, json!(true));
            }
            let body = json!({
                "principal_type": "agent",
                "principal_id": Uuid::nil(),
                "secret_path_pattern": pattern,
                "permissions": permissions,
                "priority": priority,
                "conditions": conditions,
            });
            let Ok(request) = serde_json::from_value::<CreatePolicyRequest>(body) else {
                return Ok(());
            };
            let glob = &request.secret_path_pattern;
            prop_assert_eq!(PathPattern::parse(glob.as_str()), Ok(glob.clone()));
            let written = serde_json::to_value(&request.conditions).unwrap();
            let read_back: Conditions = serde_json::from_value(written).unwrap();
            prop_assert_eq!(read_back, request.conditions.clone());
            if let Some(window) = &request.conditions.time_window {
                prop_assert_ne!(window.after(), window.before());
            }
        }
    }
}
