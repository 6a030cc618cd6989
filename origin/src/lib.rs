//! The oxvault origin: an axum service that owns PostgreSQL and the HSM.
//!
//! Requests arrive from the edge (a Cloudflare Worker) and flow through three layers:
//! [`http`] (routing, extraction, error mapping) -> [`service`] (what the product does) ->
//! [`store`] (SQL). Key material is handled only in [`crypto`], behind four traits, one per
//! kind of key the HSM keeps ([`crypto::KeyWrapper`] for data keys, [`crypto::TokenSigner`]
//! for access tokens, [`crypto::AuditMac`] for the audit chain, [`crypto::KekAdmin`] for KEK
//! rotation); [`crypto::Pkcs11Hsm`] implements all four over PKCS#11, and services reach the
//! first three only through [`crypto::Keyring`].

pub mod config;
pub mod crypto;
pub mod http;
pub mod mail;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
