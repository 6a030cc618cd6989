//! Black-box tests of oxvault through the edge (`wrangler dev`), against real PostgreSQL and
//! a real SoftHSM2 token. One binary, one module per area.

mod agents;
mod api_keys;
mod auth;
mod forwarding;
mod health;
mod lifecycle;
mod org;
