//! Asking the rate-limiter objects, from the Worker's side.
//!
//! Each [`Check`] goes to the object named by its key; a refusal ends the request with a 429,
//! and the allowed decisions are kept so the response can tell the client how much room it
//! has left. When an object cannot be asked, the request is refused with a 503: letting it
//! through would turn an outage of the limiter into no limit at all (fail closed).
//!
//! The per-subject limit is asked for a lease of several requests at once, and the isolate
//! spends it locally ([`crate::rate_limit::allowance`]): most authenticated requests then make
//! no round trip to an object at all.

use std::cell::RefCell;

use oxvault_core::edge_report::Refusals;
use worker::wasm_bindgen::JsValue;
use worker::{Date, Env, Method, Request, RequestInit};

use crate::error::EdgeError;
use crate::rate_limit::allowance::{Allowances, lease_size};
use crate::rate_limit::plan::Check;
use crate::rate_limit::wire::{CHECK_URL, CheckRequest, Decision, Grant, tightest};
use crate::rate_limit::{Limit, RateLimits};

thread_local! {
    /// The isolate's leased requests. Per-isolate state shared by requests, like the key
    /// cache (see `runtime::auth`): it only ever holds requests the object has already
    /// counted, so losing it (a new isolate) makes the limit stricter, never looser. wasm32
    /// runs one thread per isolate; no borrow is held across an `.await`.
    static ALLOWANCES: RefCell<Allowances> = const { RefCell::new(Allowances::new()) };

    /// Refusals not yet reported to the origin (see `oxvault_core::edge_report`).
    static REFUSED: RefCell<Refusals> = const { RefCell::new(Refusals::new()) };
}

/// The refusals counted since the last report, leaving none.
pub(super) fn take_refusals() -> Refusals {
    REFUSED.with_borrow_mut(std::mem::take)
}

/// Puts back a report that did not reach the origin.
pub(super) fn put_back_refusals(refusals: Refusals) {
    REFUSED.with_borrow_mut(|kept| kept.merge(refusals));
}

/// The Durable Object namespace binding of `wrangler.toml`.
pub(super) const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

/// The checks of one request.
#[derive(Debug)]
pub(super) struct Limiter<'a> {
    env: &'a Env,
    limits: RateLimits,
    decisions: Vec<Decision>,
}

impl<'a> Limiter<'a> {
    pub(super) fn new(env: &'a Env, limits: RateLimits) -> Self {
        Self {
            env,
            limits,
            decisions: Vec::new(),
        }
    }

    /// Counts this request under `check`; `Err` (429 or 503) when it may not go on.
    pub(super) async fn check(&mut self, check: Check) -> Result<(), EdgeError> {
        let limit = check.class.limit(&self.limits);
        let decision = if check.class.leased() {
            self.leased(&check.key, limit).await?
        } else {
            ask(self.env, &check.key, CheckRequest::new(limit))
                .await?
                .decision
        };
        if !decision.allowed {
            REFUSED.with_borrow_mut(|refused| refused.add(check.class.report_name()));
            return Err(EdgeError::RateLimited(decision));
        }
        if check.class.reported() {
            self.decisions.push(decision);
        }
        Ok(())
    }

    /// Spends one request of the isolate's allowance for `key`, or asks the object for a new
    /// lease when there is none.
    async fn leased(&self, key: &str, limit: Limit) -> Result<Decision, EdgeError> {
        let now = Date::now().as_millis();
        if let Some(decision) = ALLOWANCES.with_borrow_mut(|all| all.spend(key, limit, now)) {
            return Ok(decision);
        }
        let request = CheckRequest::taking(limit, lease_size(limit));
        let grant = ask(self.env, key, request).await?;
        // The clock moved across the round trip; the lease runs from its answer.
        let now = Date::now().as_millis();
        Ok(ALLOWANCES.with_borrow_mut(|all| all.keep(key, limit, &grant, now)))
    }

    /// The `X-RateLimit-*` headers of the tightest limit that applied; none when no limit
    /// applied.
    pub(super) fn headers(&self) -> Vec<(&'static str, String)> {
        tightest(&self.decisions)
            .map(Decision::headers)
            .unwrap_or_default()
    }
}

/// One round trip to the object named `key`. Errors name what failed, never the key (it may
/// be an email address).
async fn ask(env: &Env, key: &str, request: CheckRequest) -> Result<Grant, EdgeError> {
    let unavailable =
        |what: &str, err: worker::Error| EdgeError::LimiterUnavailable(format!("{what}: {err}"));
    let namespace = env
        .durable_object(RATE_LIMITER_BINDING)
        .map_err(|err| unavailable("binding RATE_LIMITER", err))?;
    let stub = namespace
        .id_from_name(key)
        .and_then(|id| id.get_stub())
        .map_err(|err| unavailable("stub", err))?;

    let body = serde_json::to_string(&request)
        .map_err(|err| EdgeError::LimiterUnavailable(format!("check not encoded: {err}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(JsValue::from_str(&body)));
    let check =
        Request::new_with_init(CHECK_URL, &init).map_err(|err| unavailable("request", err))?;

    let mut response = stub
        .fetch_with_request(check)
        .await
        .map_err(|err| unavailable("check", err))?;
    if response.status_code() != 200 {
        return Err(EdgeError::LimiterUnavailable(format!(
            "check answered {}",
            response.status_code()
        )));
    }
    response
        .json::<Grant>()
        .await
        .map_err(|err| unavailable("decision", err))
}
