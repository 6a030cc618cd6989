//! The answers every operation can give beyond its own, added to the OpenAPI document in one
//! place so no handler forgets them, and every error answer typed as
//! `application/problem+json` with the [`ProblemDetails`] schema, as the server sends it.
//!
//! What each handler documents is what its service decides (a 404 for an unknown vault, a 412
//! for a stale `If-Match`). What is added here comes from the layers every request crosses:
//!
//! | status | when | from |
//! |---|---|---|
//! | 400 | a body, query or header that does not parse | extractors |
//! | 401 | a missing, invalid, expired or revoked token | the edge, then the origin |
//! | 403 | a scoped session (API key, agent) without the route's scope | `scopes` |
//! | 413 / 415 | a body over the limit / not JSON | `body_limit`, the JSON extractor |
//! | 429 | a rate limit of the edge, or the origin's throttle | the edge, `throttle` |
//! | 502 / 503 / 504 | the origin unreachable, a dependency (database, HSM) down, a timeout | the edge, the origin |
//!
//! [`ProblemDetails`]: oxvault_core::problem::ProblemDetails

use oxvault_core::problem::PROBLEM_JSON;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// Public documents that no limit or token guards: they can only fail with the edge.
const UNLIMITED: &[&str] = &[
    "/v1/openapi.json",
    "/v1/auth/jwt-public-key",
    "/.well-known/jwks.json",
];

/// Adds the common answers to every operation and types every error body as problem JSON.
pub(super) fn add_to_document(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (_, operation) in super::scopes::operations(item) {
            for (status, description) in common_statuses(path, operation) {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem_response(description)));
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && is_error(status)
                {
                    type_as_problem(response);
                }
            }
        }
    }
}

/// The common statuses that apply to one operation, with what they mean there.
fn common_statuses(path: &str, operation: &Operation) -> Vec<(u16, &'static str)> {
    let mut statuses = Vec::new();
    let takes_input = operation.request_body.is_some()
        || parameters_in(operation, |place| {
            matches!(place, ParameterIn::Query | ParameterIn::Header)
        });
    if takes_input {
        statuses.push((
            400,
            "A body, query or header that does not parse or validate",
        ));
    }
    if takes_token(operation) {
        statuses.push((401, "Missing, invalid, expired or revoked access token"));
    }
    if is_scoped(operation) {
        statuses.push((403, "The session's scopes do not cover this route"));
    }
    if operation.request_body.is_some() {
        statuses.push((413, "The body is larger than the server accepts"));
        statuses.push((415, "The body is not JSON (Content-Type: application/json)"));
    }
    if !UNLIMITED.contains(&path) {
        statuses.push((429, "Rate limited; `Retry-After` says when to try again"));
    }
    statuses.push((
        502,
        "The edge could not reach the origin; `Retry-After` says when to try again",
    ));
    statuses.push((
        503,
        "A dependency (database, HSM, rate limiter) is unavailable, with `Retry-After` \
         saying when to try again; or the edge's configuration is broken",
    ));
    statuses.push((504, "The origin did not answer the edge in time"));
    statuses
}

fn parameters_in(operation: &Operation, wanted: impl Fn(&ParameterIn) -> bool) -> bool {
    operation.parameters.iter().flatten().any(
        |parameter| matches!(parameter, RefOr::T(parameter) if wanted(&parameter.parameter_in)),
    )
}

/// Whether the operation accepts a bearer token (required or optional): an empty requirement
/// alone (`security: []` or `[{}]`) means it takes none.
fn takes_token(operation: &Operation) -> bool {
    match &operation.security {
        // The document's default applies: the Bearer scheme.
        None => true,
        Some(requirements) => requirements
            .iter()
            .any(|requirement| *requirement != SecurityRequirement::default()),
    }
}

/// Whether the operation names scopes, so that a scoped session may be refused there (routes
/// open to any session list none).
fn is_scoped(operation: &Operation) -> bool {
    operation.security.iter().flatten().any(|requirement| {
        // The requirement's scheme -> scopes map is private; its JSON form is the map.
        serde_json::to_value(requirement).is_ok_and(|schemes| {
            schemes.as_object().is_some_and(|schemes| {
                schemes
                    .values()
                    .any(|scopes| scopes.as_array().is_some_and(|scopes| !scopes.is_empty()))
            })
        })
    })
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// Moves an error response's problem schema under `application/problem+json` (what the server
/// sends), or declares it there when the handler named no body. A body of its own (the health
/// reports' 503 is the report) stays as the handler documented it.
fn type_as_problem(response: &mut Response) {
    let names_problem = |content: &RefOr<utoipa::openapi::content::Content>| {
        matches!(content, RefOr::T(content)
            if matches!(&content.schema, Some(RefOr::Ref(schema)) if schema.ref_location == PROBLEM_SCHEMA_REF))
    };
    let own_body = response
        .content
        .values()
        .any(|content| !names_problem(content));
    if own_body {
        return;
    }
    response.content.clear();
    response
        .content
        .insert(PROBLEM_JSON.to_owned(), RefOr::T(problem_content()));
}

/// Where the document keeps the problem schema.
const PROBLEM_SCHEMA_REF: &str = "#/components/schemas/ProblemDetails";

fn problem_content() -> utoipa::openapi::content::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ProblemDetails")))
        .build()
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, problem_content())
        .build()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Each operation of the served document with its method and path.
    fn operations() -> Vec<(String, String, Value)> {
        let document = super::super::openapi_document();
        let mut all = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                all.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
        all
    }

    #[test]
    fn every_error_answer_is_a_problem_document_unless_it_documents_its_own_body() {
        for (method, path, operation) in operations() {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let content = response["content"].as_object().expect("content");
                let problem = &content.get("application/problem+json");
                match problem {
                    Some(problem) => assert_eq!(
                        (content.len(), &problem["schema"]["$ref"]),
                        (1, &Value::from(super::PROBLEM_SCHEMA_REF)),
                        "{method} {path} {status}"
                    ),
                    // Only the health reports answer an error with a body of their own.
                    None => assert!(path.starts_with("/v1/health"), "{method} {path} {status}"),
                }
            }
        }
    }

    #[test]
    fn every_operation_lists_what_the_layers_in_front_of_it_answer() {
        for (method, path, operation) in operations() {
            let has = |status: &str| operation["responses"].get(status).is_some();
            let secured = operation["security"].as_array().is_some_and(|security| {
                security
                    .iter()
                    .any(|requirement| requirement.get("BearerAuth").is_some())
            });
            if secured {
                assert!(has("401"), "{method} {path}: takes a token, no 401");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(has(status), "{method} {path}: a body, no {status}");
                }
            }
            for status in ["502", "503", "504"] {
                assert!(has(status), "{method} {path}: no {status}");
            }
            let limited = !super::UNLIMITED.contains(&path.as_str());
            assert_eq!(has("429"), limited, "{method} {path}: 429");
        }
    }
}
