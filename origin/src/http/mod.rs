//! The HTTP layer of the origin: routing, middleware, and the mapping of errors to RFC 7807
//! bodies; the MCP server at `/mcp` ([`mcp`]) is part of it. Each module exposes `router()`;
//! [`router`] merges them and adds what every route shares. Handlers stay thin: parse, call a
//! service, shape the answer.

mod agents;
mod api_keys;
mod audit;
mod auth;
mod billing;
pub(crate) mod body_limit;
pub mod client;
mod common_responses;
mod document_shapes;
pub mod error;
pub(crate) mod extract;
mod health;
mod mcp;
pub mod metering;
pub mod metrics;
mod openapi;
mod org;
mod policies;
mod request_id;
mod scopes;
mod secret_requests;
mod secrets;
mod shares;
pub mod throttle;
mod vaults;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use oxvault_core::problem::ProblemKind;
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::crypto::Keyring;
use crate::service::agents::AgentsService;
use crate::service::api_keys::ApiKeyService;
use crate::service::audit::AuditLog;
use crate::service::audit::AuditService;
use crate::service::auth::AuthService;
use crate::service::billing::BillingService;
use crate::service::invitations::InvitationService;
use crate::service::org::OrgService;
use crate::service::policies::PoliciesService;
use crate::service::secret_requests::SecretRequestsService;
use crate::service::secrets::SecretsService;
use crate::service::shares::SharesService;
use crate::service::vaults::VaultsService;
use crate::store::StatementPool;
pub use error::ApiError;
use error::problem_response;

/// What every handler may use, built once at start-up and shared: axum clones the state for
/// every handler and middleware a request passes, and this clone is one reference count.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles and services behind [`AppState`]; handlers take the service they need by
/// `State<...>` (each module's `FromRef`).
#[derive(Debug)]
pub struct Shared {
    pub pool: PgPool,
    /// The hot path's connections for autocommit reads (principal checks).
    pub statements: StatementPool,
    pub keyring: Keyring,
    /// Where every act records its audit events (group commit).
    pub audit: AuditLog,
    pub auth: AuthService,
    pub org: OrgService,
    pub invitations: InvitationService,
    pub api_keys: ApiKeyService,
    pub secrets: SecretsService,
    pub secret_requests: SecretRequestsService,
    pub vaults: VaultsService,
    pub policies: PoliciesService,
    pub shares: SharesService,
    pub agents: AgentsService,
    pub audit_trail: AuditService,
    pub billing: BillingService,
    /// Whether a request comes from the edge, and so whose client address to believe.
    pub edge_trust: client::EdgeTrust,
    /// The origin's own coarse per-client limit on costly routes.
    pub throttle: throttle::Throttle,
    /// Where requests are metered for billing usage.
    pub meter: metering::Meter,
    /// The health probe, shared by every caller for a couple of seconds.
    pub health: crate::service::health::Health,
}

/// The whole HTTP application: every module's routes, the OpenAPI document, and the shared
/// middleware (request id + access log, panic catching, usage metering, the body size limit,
/// RFC 7807 fallbacks).
pub fn router(state: AppState) -> Router {
    let (routes, mut api) = api_routes().split_for_parts();
    complete_document(&mut api);
    // Serialised once: every request answers the same bytes (a clone is a reference count).
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&document_shapes::finish(&api)).unwrap_or_default(),
    );
    routes
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .route_service(
            mcp::MCP_PATH,
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    mcp::authenticate,
                ))
                .service(mcp::service(state.clone())),
        )
        // Routes only: a metered request has a route template (MatchedPath) to record.
        .route_layer(axum::middleware::from_fn_with_state(
            state.meter.clone(),
            metering::meter,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record_request,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            throttle::guard_costly_routes,
        ))
        .with_state(state)
        .layer(body_limit::default_limit())
        .layer(axum::middleware::from_fn(body_limit::limit_body))
        .layer(CatchPanicLayer::custom(|_| {
            // The panic message may hold anything; it is not repeated to the caller.
            tracing::error!("a handler panicked");
            problem_response(
                ProblemKind::Internal.with_detail("the request failed; it has been logged"),
            )
        }))
        .layer(axum::middleware::from_fn(request_id::with_request_id))
}

async fn not_found() -> Response {
    problem_response(ProblemKind::NotFound.with_detail("no such route"))
}

async fn method_not_allowed() -> Response {
    problem_response(ProblemKind::MethodNotAllowed.with_detail("method not allowed on this route"))
}

/// Every documented route, with the document they make up.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(api_keys::router())
        .merge(agents::router())
        .merge(org::router())
        .merge(vaults::router())
        .merge(secrets::router())
        .merge(policies::router())
        .merge(shares::router())
        .merge(secret_requests::router())
        .merge(audit::router())
        .merge(billing::router())
}

/// The generated OpenAPI document as served, for tools that want it without a running server.
pub fn openapi_document() -> serde_json::Value {
    document_shapes::finish(&typed_document())
}

/// The document before its last, JSON-level step ([`document_shapes`]), for tests that
/// walk its operations.
fn typed_document() -> utoipa::openapi::OpenApi {
    let mut api = api_routes().into_openapi();
    complete_document(&mut api);
    api
}

/// The steps that apply to every operation once all routes are in: scopes in `security`,
/// the common error answers.
fn complete_document(api: &mut utoipa::openapi::OpenApi) {
    api.merge(mcp::McpDocument::openapi());
    scopes::show_in_document(api);
    common_responses::add_to_document(api);
}
