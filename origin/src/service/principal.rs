//! The authenticated caller, as established for one request: a verified token whose
//! principal is, right now, still what the token says.

use std::net::IpAddr;

use oxvault_core::claims::{Role, Subject};
use oxvault_core::ids::{AgentId, OrgId, UserId, VaultId};
use uuid::Uuid;

use super::ServiceError;

/// Who is calling. Built only by [`super::auth::AuthService::authenticate`].
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: OrgId,
    pub subject: Subject,
    /// The user's current role (from the database, not the token); `None` for agents.
    pub role: Option<Role>,
    /// The user's login session; `None` for agents.
    pub session: Option<Uuid>,
    /// Scopes of the agent or of the API key the session came from.
    pub scopes: Vec<String>,
    /// The vaults an agent is bound to (empty: not bound).
    pub vault_ids: Vec<VaultId>,
    /// The address the request came from, when known (as the edge vouches for it, else the
    /// TCP peer): what policy `ip_allowlist` conditions are checked against. Set by the HTTP
    /// layer after authentication; `None` fails every allowlist.
    pub client_ip: Option<IpAddr>,
}

impl Principal {
    /// The user behind this call, if a human.
    pub fn user_id(&self) -> Option<UserId> {
        match self.subject {
            Subject::User(id) => Some(id),
            Subject::Agent(_) => None,
        }
    }

    /// The agent behind this call, if an agent.
    pub fn agent_id(&self) -> Option<AgentId> {
        match self.subject {
            Subject::Agent(id) => Some(id),
            Subject::User(_) => None,
        }
    }

    /// The principal as policies name it: (`user` | `agent`, id).
    pub fn key(&self) -> (&'static str, uuid::Uuid) {
        match self.subject {
            Subject::User(id) => ("user", *id.as_uuid()),
            Subject::Agent(id) => ("agent", *id.as_uuid()),
        }
    }

    /// The user id, or 403 for agents.
    pub fn require_user(&self) -> Result<UserId, ServiceError> {
        self.user_id().ok_or(ServiceError::Forbidden(
            "this endpoint is for users, not agents",
        ))
    }

    /// The agent id, or 403 for users.
    pub fn require_agent(&self) -> Result<AgentId, ServiceError> {
        self.agent_id().ok_or(ServiceError::Forbidden(
            "this endpoint is for agents, not users",
        ))
    }

    /// Passes only owners and admins of the org.
    pub fn require_manager(&self) -> Result<UserId, ServiceError> {
        let user = self.require_user()?;
        match self.role {
            Some(role) if role.can_manage() => Ok(user),
            _ => Err(ServiceError::Forbidden(
                "only an owner or admin may do this",
            )),
        }
    }
}
