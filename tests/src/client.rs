//! The HTTP client the tests speak to the stack with.
//!
//! Its one setting is how long an idle connection is kept for reuse. The runtime under
//! `wrangler dev` closes an idle keep-alive connection after 5 s (measured: one idle 4.5 s was
//! reused, one idle 5.5 s was found closed). Under reqwest's default of 90 s, a request that
//! reuses a connection at the moment the edge closes it fails with "connection closed before
//! message completed" (a soak lost one write of about 1,700 that way). A client cannot resend
//! such a request on its own: it does not know whether it arrived. Dropping connections well
//! before the server does leaves no such moment.

use std::time::Duration;

/// How long an idle connection stays in the pool: under the edge's 5 s.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A client builder with [`POOL_IDLE_TIMEOUT`] set; callers add what they need.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(POOL_IDLE_TIMEOUT)
}

/// A client with nothing else set.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("an HTTP client")
}

/// A client whose requests come from 127.0.0.`last`: `wrangler dev` takes the TCP peer as the
/// client's address (`CF-Connecting-IP`), which the edge's per-address limits count and the
/// edge vouches for to the origin.
pub fn client_from(last: u8) -> reqwest::Client {
    client_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("an HTTP client")
}
