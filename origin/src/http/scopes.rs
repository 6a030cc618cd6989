//! The one table of what each authenticated route asks of a scoped session (a personal API
//! key's or an agent's scopes; see [`oxvault_core::scope`]), the check that applies it, and
//! the OpenAPI step that shows it in every operation's `security`.
//!
//! The check runs where the caller is authenticated ([`super::extract`]), before any handler
//! code, so no route can forget it. A scoped session on a route missing from the table is
//! refused (deny by default); `every_documented_operation_has_one_row` keeps the table and
//! the routes in step.

use axum::extract::MatchedPath;
use axum::http::Method;
use axum::http::request::Parts;
use oxvault_core::scope::{Action, Permission, Requirement, Resource};
use utoipa::openapi::security::SecurityRequirement;

use crate::service::ServiceError;
use crate::service::principal::Principal;

/// The security scheme every authenticated operation names (see `super::openapi`).
const SCHEME: &str = "BearerAuth";

const fn scoped(resource: Resource, action: Action) -> Requirement {
    Requirement::Scoped(Permission::new(resource, action))
}

use Action::{Read, Write};
use Resource::*;

/// Method, route as the OpenAPI document writes it, and what a scoped session needs there.
/// Public routes (sign-in, health, keys) are absent: they take no session.
const ROUTES: &[(&str, &str, Requirement)] = &[
    // The caller itself.
    ("GET", "/v1/auth/me", Requirement::Session),
    ("DELETE", "/v1/auth/token", Requirement::Session),
    ("GET", "/v1/agents/me", Requirement::Session),
    ("POST", "/v1/auth/change-password", Requirement::FullAccess),
    // Personal API keys.
    ("GET", "/v1/auth/api-keys", scoped(ApiKeys, Read)),
    ("POST", "/v1/auth/api-keys", scoped(ApiKeys, Write)),
    (
        "DELETE",
        "/v1/auth/api-keys/{key_id}",
        scoped(ApiKeys, Write),
    ),
    // Agents.
    ("GET", "/v1/agents", scoped(Agents, Read)),
    ("POST", "/v1/agents", scoped(Agents, Write)),
    ("GET", "/v1/agents/{agent_id}", scoped(Agents, Read)),
    ("PATCH", "/v1/agents/{agent_id}", scoped(Agents, Write)),
    ("DELETE", "/v1/agents/{agent_id}", scoped(Agents, Write)),
    (
        "POST",
        "/v1/agents/{agent_id}/rotate-key",
        scoped(Agents, Write),
    ),
    // The org.
    ("GET", "/v1/org/members", scoped(Org, Read)),
    ("PATCH", "/v1/org/members/{user_id}", scoped(Org, Write)),
    ("DELETE", "/v1/org/members/{user_id}", scoped(Org, Write)),
    ("POST", "/v1/org/invite", scoped(Org, Write)),
    (
        "POST",
        "/v1/org/invitations/accept",
        Requirement::FullAccess,
    ),
    // Vaults.
    ("GET", "/v1/vaults", scoped(Vaults, Read)),
    ("POST", "/v1/vaults", scoped(Vaults, Write)),
    ("GET", "/v1/vaults/{vault_id}", scoped(Vaults, Read)),
    ("DELETE", "/v1/vaults/{vault_id}", scoped(Vaults, Write)),
    // Policies.
    (
        "GET",
        "/v1/vaults/{vault_id}/policies",
        scoped(Policies, Read),
    ),
    (
        "POST",
        "/v1/vaults/{vault_id}/policies",
        scoped(Policies, Write),
    ),
    (
        "PUT",
        "/v1/vaults/{vault_id}/policies/{policy_id}",
        scoped(Policies, Write),
    ),
    (
        "DELETE",
        "/v1/vaults/{vault_id}/policies/{policy_id}",
        scoped(Policies, Write),
    ),
    // Secrets.
    (
        "GET",
        "/v1/vaults/{vault_id}/secrets",
        scoped(Secrets, Read),
    ),
    (
        "GET",
        "/v1/vaults/{vault_id}/secrets/{path}",
        scoped(Secrets, Read),
    ),
    (
        "PUT",
        "/v1/vaults/{vault_id}/secrets/{path}",
        scoped(Secrets, Write),
    ),
    (
        "DELETE",
        "/v1/vaults/{vault_id}/secrets/{path}",
        scoped(Secrets, Write),
    ),
    (
        "GET",
        "/v1/vaults/{vault_id}/secret-versions/{path}",
        scoped(Secrets, Read),
    ),
    (
        "GET",
        "/v1/vaults/{vault_id}/secret-version/{path}/{version}",
        scoped(Secrets, Read),
    ),
    (
        "POST",
        "/v1/vaults/{vault_id}/secret-version-disable/{path}/{version}",
        scoped(Secrets, Write),
    ),
    (
        "POST",
        "/v1/vaults/{vault_id}/secret-rotate/{path}",
        scoped(Secrets, Write),
    ),
    // Share links.
    (
        "POST",
        "/v1/secrets/{secret_id}/share",
        scoped(Shares, Write),
    ),
    ("GET", "/v1/share/{share_id}", scoped(Shares, Read)),
    ("DELETE", "/v1/share/{share_id}", scoped(Shares, Write)),
    ("GET", "/v1/shares/inbound", scoped(Shares, Read)),
    ("GET", "/v1/shares/outbound", scoped(Shares, Read)),
    ("GET", "/v1/org/shares", scoped(Shares, Read)),
    (
        "POST",
        "/v1/shares/{share_id}/accept",
        scoped(Shares, Write),
    ),
    (
        "POST",
        "/v1/shares/{share_id}/decline",
        scoped(Shares, Write),
    ),
    // Secret requests (the prompt and the fulfilment are public).
    (
        "POST",
        "/v1/vaults/{vault_id}/secret-requests",
        scoped(Secrets, Write),
    ),
    (
        "GET",
        "/v1/vaults/{vault_id}/secret-requests",
        scoped(Secrets, Read),
    ),
    (
        "GET",
        "/v1/secret-requests/{request_id}",
        scoped(Secrets, Read),
    ),
    (
        "DELETE",
        "/v1/secret-requests/{request_id}",
        scoped(Secrets, Write),
    ),
    // The MCP server: any session; each tool is held to the row of the route it stands for.
    ("POST", "/mcp", Requirement::Session),
    // Audit and billing.
    ("GET", "/v1/audit/events", scoped(Audit, Read)),
    ("GET", "/v1/audit/verify", scoped(Audit, Read)),
    ("GET", "/v1/billing/usage", scoped(Billing, Read)),
    ("GET", "/v1/billing/history", scoped(Billing, Read)),
];

/// The route as axum matched it, written the way the document writes it: the secret routes
/// capture the rest of the path (`{*path}`, `{*rest}` for `{path}/{version}`), which OpenAPI
/// cannot express.
fn documented_path(matched: &str) -> std::borrow::Cow<'_, str> {
    if let Some(prefix) = matched.strip_suffix("/{*rest}") {
        format!("{prefix}/{{path}}/{{version}}").into()
    } else if let Some(prefix) = matched.strip_suffix("/{*path}") {
        format!("{prefix}/{{path}}").into()
    } else {
        matched.into()
    }
}

/// What the route of `method` + `path` (as documented) asks of a scoped session, if listed.
fn requirement(method: &str, path: &str) -> Option<Requirement> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, need)| *need)
}

/// The route of a request, kept for the scope check: it runs once the principal is known,
/// which may be after the handler has taken the request apart (see [`super::extract::Claimed`]).
#[derive(Debug, Clone)]
pub(super) struct RouteOf {
    method: Method,
    /// As the document writes it.
    route: Option<String>,
}

impl RouteOf {
    pub(super) fn of(parts: &Parts) -> Self {
        Self {
            method: parts.method.clone(),
            route: parts
                .extensions
                .get::<MatchedPath>()
                .map(|matched| documented_path(matched.as_str()).into_owned()),
        }
    }

    /// The route an MCP tool stands for: its call is held to that route's scope.
    pub(super) fn named(method: Method, route: &str) -> Self {
        Self {
            method,
            route: Some(route.to_owned()),
        }
    }

    /// Whether a scoped `principal` may use this route (listed, and covered by its scopes).
    pub(super) fn allows(&self, principal: &Principal) -> bool {
        self.check(principal).is_ok()
    }

    /// Refuses a scoped `principal` whose scopes do not cover this route. Unscoped sessions
    /// pass: their role and the policies decide, as before scopes existed.
    pub(super) fn check(&self, principal: &Principal) -> Result<(), ServiceError> {
        if principal.scopes.is_empty() {
            return Ok(());
        }
        let route = self.route.as_deref();
        let need = route.and_then(|path| requirement(self.method.as_str(), path));
        match need {
            Some(need) if need.allows(&principal.scopes) => Ok(()),
            Some(_) => Err(ServiceError::Forbidden(
                "the credential's scopes do not allow this request",
            )),
            None => {
                tracing::error!(route = ?route, method = %self.method, "route missing from the scope table; refused");
                Err(ServiceError::Forbidden(
                    "the credential's scopes do not allow this request",
                ))
            }
        }
    }
}

/// Writes each listed operation's requirement into the document: `security` names the scopes
/// that let a scoped session through, narrowest first (an unscoped session needs none). A
/// public operation that also answers more to a session (a share read) keeps its `{}`.
pub(super) fn show_in_document(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            let Some(need) = requirement(method, path) else {
                if is_public(operation) {
                    // Takes no token at all: `security: []`, not "optional" (`[{}]`).
                    operation.security = Some(Vec::new());
                }
                continue;
            };
            let scoped = SecurityRequirement::new(SCHEME, need.scope_names());
            let mut security = Vec::new();
            if is_public(operation) {
                security.push(SecurityRequirement::default());
            }
            security.push(scoped);
            operation.security = Some(security);
        }
    }
}

/// Whether an operation is public: it declares `security: [{}]` (utoipa's `security(())`),
/// or `security: []` once this step has run.
fn is_public(operation: &utoipa::openapi::path::Operation) -> bool {
    operation.security.as_ref().is_some_and(|security| {
        security.is_empty()
            || security
                .iter()
                .any(|requirement| *requirement == SecurityRequirement::default())
    })
}

/// The operations of one path item with their method names.
pub(super) fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_operation_is_public_or_has_one_row_and_every_row_is_documented() {
        let mut document = super::super::typed_document();
        let mut seen = Vec::new();
        for (path, item) in document.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                let listed = requirement(method, path).is_some();
                assert!(
                    listed || is_public(operation),
                    "{method} {path} takes a session but has no row in the scope table"
                );
                if listed {
                    seen.push((method, path.clone()));
                }
            }
        }
        for (method, path, _) in ROUTES {
            let count = ROUTES
                .iter()
                .filter(|(m, p, _)| m == method && p == path)
                .count();
            assert_eq!(count, 1, "{method} {path} is listed {count} times");
            assert!(
                seen.iter().any(|(m, p)| m == method && p == path),
                "{method} {path} is listed but not served"
            );
        }
    }

    #[test]
    fn wildcard_routes_are_named_as_the_document_names_them() {
        assert_eq!(
            documented_path("/v1/vaults/{vault_id}/secret-version/{*rest}"),
            "/v1/vaults/{vault_id}/secret-version/{path}/{version}"
        );
        assert_eq!(
            documented_path("/v1/vaults/{vault_id}/secrets/{*path}"),
            "/v1/vaults/{vault_id}/secrets/{path}"
        );
        assert_eq!(documented_path("/v1/vaults"), "/v1/vaults");
    }

    #[test]
    fn the_document_shows_the_scopes_of_a_route() {
        let document = super::super::typed_document();
        let json = serde_json::to_value(&document).unwrap();
        let security = &json["paths"]["/v1/vaults/{vault_id}/secrets/{path}"]["put"]["security"];
        assert_eq!(
            security,
            &serde_json::json!([{"BearerAuth": ["secrets:write", "secrets:*", "*"]}])
        );
        let security = &json["paths"]["/v1/auth/change-password"]["post"]["security"];
        assert_eq!(security, &serde_json::json!([{"BearerAuth": ["*"]}]));
    }
}
