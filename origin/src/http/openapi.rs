//! The OpenAPI 3.1 document, generated from the annotated handlers and served at
//! `GET /v1/openapi.json`. Every endpoint is annotated as it is written, so the document is
//! never retrofitted.

use oxvault_core::problem::ProblemDetails;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The document's fixed parts; paths are added by each module's router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "oxvault",
        description = "Secrets vault for AI agents, compatible with the 1Claw v1 REST API.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ProblemDetails)),
    modifiers(&BearerAuth),
    tags(
        (name = "Health", description = "Liveness of the origin and its HSM"),
        (name = "Authentication", description = "Sessions, tokens and the caller's profile"),
        (name = "API Keys", description = "Personal API keys (1ck_) of users"),
        (name = "Agents", description = "AI agent identities and their keys (ocv_)"),
        (name = "Organization", description = "Members, roles and invitations"),
        (name = "Vaults", description = "Vaults: named containers of secrets"),
        (name = "Secrets", description = "Secrets and their versions, envelope-encrypted under the HSM"),
        (name = "Audit", description = "The org's audit trail and the verification of its HMAC hash chain"),
        (name = "Billing", description = "Usage of the metered API and the tier's limits"),
    ),
    security(("BearerAuth" = [])),
)]
pub struct ApiDoc;

/// Declares the `BearerAuth` scheme (JWT access tokens) that authenticated routes reference.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "BearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use oxvault_core::routes::{PUBLIC_ROUTES, allows, path_matches};
    use serde_json::Value;

    /// The served document as JSON.
    fn document() -> Value {
        super::super::openapi_document()
    }

    /// An operation takes no token when its `security` is empty or holds only `{}`.
    fn is_public(operation: &Value) -> bool {
        operation["security"].as_array().is_some_and(|security| {
            security.is_empty()
                || security
                    .iter()
                    .any(|requirement| requirement == &Value::Object(Default::default()))
        })
    }

    /// The edge lets through without a token exactly what the document calls public, and its
    /// 405s name exactly the methods the document has on those paths.
    #[test]
    fn the_public_route_table_is_the_documents_public_operations() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                let method = method.to_ascii_uppercase();
                let listed = PUBLIC_ROUTES
                    .iter()
                    .any(|route| route.method == method && path_matches(route.pattern, path));
                assert_eq!(
                    is_public(operation),
                    listed,
                    "{method} {path}: public in one, not the other"
                );
            }
        }
        for route in PUBLIC_ROUTES {
            let (pattern, methods) = (route.pattern, route.allow);
            // The document writes `{share_id}` where the table writes `{id}`.
            let Some((_, item)) = paths.iter().find(|(path, _)| path_matches(pattern, path)) else {
                // Served outside the document: the document itself.
                assert_eq!(pattern, "/v1/openapi.json");
                continue;
            };
            for method in item.as_object().expect("path item").keys() {
                let method = method.to_ascii_uppercase();
                assert!(
                    allows(methods, &method),
                    "{method} {pattern} missing from its Allow"
                );
            }
            let documented = methods.split(", ").filter(|method| *method != "HEAD");
            for method in documented {
                assert!(
                    item.get(method.to_ascii_lowercase()).is_some(),
                    "{method} {pattern} is in the table but not in the document"
                );
            }
        }
    }

    /// The document as `oxvault-origin openapi` prints it.
    fn printed() -> String {
        serde_json::to_string_pretty(&super::super::openapi_document())
            .expect("the document serialises")
            + "\n"
    }

    /// `openapi.json` at the repository root is what clients and fuzzers read without a
    /// running server; it must be exactly what the code serves.
    #[test]
    fn the_committed_openapi_json_is_the_document_the_code_serves() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == printed(),
            "openapi.json differs from the code; regenerate it with \
             `cargo run -q -p oxvault-origin -- openapi > openapi.json`"
        );
    }
}
