//! The key exchange of an MCP request ([`crate::mcp`]): the isolate's token cache, and the
//! exchange at the origin on a miss, under the limits of the exchange route.

use std::cell::RefCell;

use worker::{Date, Url, console_error};

use super::limiter::Limiter;
use super::origin_call::{OriginCall, call_origin};
use crate::auth::unix_seconds;
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::mcp::{KeyCredential, TokenCache, parse_exchange};
use crate::rate_limit::plan::{self, LimitClass};

thread_local! {
    /// Access tokens for keys, per isolate (one thread per isolate in wasm32; no borrow is held
    /// across an `.await`). Losing it costs one exchange per key.
    static TOKENS: RefCell<TokenCache> = RefCell::new(TokenCache::new());
}

/// An access token for `key`: the cached one, or a fresh exchange at the origin (which counts
/// against the exchange route's per-IP and per-identity limits, as a client's own would).
pub(super) async fn token_for(
    key: KeyCredential<'_>,
    config: &EdgeConfig,
    url: &Url,
    client_ip: Option<&str>,
    request_id: &str,
    limiter: &mut Limiter<'_>,
) -> Result<String, EdgeError> {
    let digest = key.digest();
    let now = unix_seconds(Date::now().as_millis());
    if let Some(token) = TOKENS.with_borrow(|cache| cache.recall(&digest, now)) {
        return Ok(token);
    }
    limiter
        .check(plan::ip_check(LimitClass::AuthIp, client_ip))
        .await?;
    let body = key.exchange_body();
    // Key exchanges carry no email, so the normalisation is never used.
    let identity = plan::identity_check("POST", key.exchange_path(), &body, &str::to_owned);
    if let Some(check) = identity {
        limiter.check(check).await?;
    }
    let call = OriginCall {
        path: key.exchange_path(),
        json_body: Some(&body),
        client_ip,
        request_id,
    };
    match call_origin(config, url, call).await {
        Some((200, answer)) => {
            let exchanged = parse_exchange(&answer)
                .ok_or_else(|| EdgeError::BadOriginResponse("unreadable key exchange".into()))?;
            let now = unix_seconds(Date::now().as_millis());
            TOKENS.with_borrow_mut(|cache| cache.store(digest, &exchanged, now));
            Ok(exchanged.access_token)
        }
        Some((400..=499, _)) => Err(EdgeError::KeyRefused),
        Some((status, _)) => {
            console_error!("request_id={request_id} key exchange answered {status}");
            Err(EdgeError::BadOriginResponse(format!(
                "key exchange status {status}"
            )))
        }
        None => Err(EdgeError::OriginUnreachable("key exchange".into())),
    }
}

/// Drops the cached token of a key whose request the origin refused (401).
pub(super) fn forget(digest: &[u8; 32]) {
    TOKENS.with_borrow_mut(|cache| cache.forget(digest));
}
