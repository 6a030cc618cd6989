//! The oxvault origin: an axum service that owns PostgreSQL and the HSM.
//!
//! Requests arrive from the edge (a Cloudflare Worker) and flow through three layers:
//! [`http`] (routing, extraction, error mapping) -> [`service`] (what the product does) ->
//! [`store`] (SQL). Key material is handled only in [`crypto`], behind the
//! [`crypto::KeyWrapper`] seam whose production implementation talks PKCS#11.

pub mod config;
pub mod crypto;
pub mod http;
pub mod mail;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
