//! The service layer: what the origin does, independent of HTTP. Handlers call services;
//! services call the store and the keyring.

pub mod health;
