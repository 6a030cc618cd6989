//! Access policies on a vault: what they are, how they are evaluated, and their wire shapes.
//!
//! A policy grants (or denies) a set of [`Permission`]s on the secrets whose paths match a
//! [`PathPattern`], optionally only from some networks and at some times of day
//! ([`Conditions`]), optionally until some instant. [`evaluate`] decides one request against
//! the policies of one principal on one vault; it is pure, so the origin runs it on every
//! request against live policy rows, and the edge could run it too.
//!
//! The rules, all of them failing closed:
//! - nothing applies: denied (`Decision::Deny { policy: None }`);
//! - a policy applies only while it has not expired, when its pattern matches the path, when it
//!   lists the permission, and when every one of its conditions holds; a condition that
//!   cannot be checked (an IP allowlist on a request without a client IP) does not hold;
//! - any applicable deny beats every applicable allow, whatever their priorities; priority
//!   only chooses which policy a decision reports (highest first, then smallest id).
//!
//! Which policies belong to which principal, and which org roles bypass policies altogether, is
//! the origin's business.

mod cidr;
mod evaluation;
#[cfg(test)]
mod fixtures;
mod pattern;
mod permission;
mod time_window;
mod wire;

pub use cidr::{Cidr, InvalidCidr};
pub use evaluation::{Conditions, Decision, Policy, RequestContext, evaluate};
pub use pattern::{InvalidPathPattern, PathPattern};
pub use permission::{Effect, Permission};
pub use time_window::{ClockTime, InvalidTimeWindow, TimeWindow, Timezone};
pub use wire::{
    CreatePolicyRequest, PolicyListResponse, PolicyResponse, PrincipalType, UpdatePolicyRequest,
};
