//! Black-box tests of oxvault through the edge (`wrangler dev`), against real PostgreSQL and
//! a real SoftHSM2 token. One binary, one module per area.

mod agents;
mod api_keys;
mod audit;
mod audit_events;
mod auth;
mod billing;
mod contract;
mod edge_auth;
mod faults;
mod forwarding;
mod google;
mod health;
mod hsm;
mod keep_alive;
mod lifecycle;
mod mail;
mod mcp;
mod metrics;
mod org;
mod policies;
mod rate_limits;
mod readme;
mod request_browser;
mod sdk;
mod secret_requests;
mod secret_versions;
mod secrets;
mod server_fields;
mod share_browser;
mod share_page;
mod shares;
