//! The authenticated caller, as established for one request: a verified token whose
//! principal is, right now, still what the token says.

use std::net::IpAddr;

use chrono::Utc;
use oxvault_core::claims::{Claims, Role, Subject};
use oxvault_core::ids::{AgentId, OrgId, UserId, VaultId};
use uuid::Uuid;

use super::ServiceError;
use crate::store::principals::{PrincipalState, Who};

/// The one answer to a token that does not (or no longer) authenticate.
pub(crate) const BAD_TOKEN: &str = "invalid or expired token";

/// The checks a principal must pass once it is known, set by the layer above from the request
/// (the route's scope, the client's address): for services that establish the principal
/// themselves, in the statement that also reads what was asked for.
pub trait Admit: Sync {
    fn admit(&self, principal: Principal) -> Result<Principal, ServiceError>;
}

/// Who is calling. Built only by [`admit`], from a verified token and its principal's live
/// state.
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

/// Whom verified `claims` name, as the store looks them up. A user's token must name its
/// session.
pub(crate) fn who_of(claims: &Claims) -> Result<Who, ServiceError> {
    Ok(match claims.sub {
        Subject::User(user_id) => Who::User {
            user_id: *user_id.as_uuid(),
            session_id: claims.sid.ok_or(ServiceError::Unauthenticated(BAD_TOKEN))?,
        },
        Subject::Agent(agent_id) => Who::Agent {
            agent_id: *agent_id.as_uuid(),
        },
    })
}

/// The principal of verified `claims`, given its live `state` (`None`: it no longer exists):
/// 401 unless the token is still current (same org and token version; the session live, or
/// the agent active and unexpired).
pub(crate) fn admit(
    claims: &Claims,
    state: Option<PrincipalState>,
) -> Result<Principal, ServiceError> {
    let refused = || ServiceError::Unauthenticated(BAD_TOKEN);
    match (claims.sub, state.ok_or_else(refused)?) {
        (Subject::User(_), PrincipalState::User(state)) => {
            let current = state.org_id == *claims.org.as_uuid()
                && state.token_version == claims.tv
                && state.session_live;
            if !current {
                return Err(refused());
            }
            Ok(Principal {
                org: claims.org,
                subject: claims.sub,
                role: Some(state.role),
                session: claims.sid,
                scopes: claims.scopes.clone().unwrap_or_default(),
                vault_ids: Vec::new(),
                client_ip: None,
            })
        }
        (Subject::Agent(_), PrincipalState::Agent(state)) => {
            let current = state.org_id == *claims.org.as_uuid()
                && state.token_version == claims.tv
                && state.is_active
                && state.expires_at.is_none_or(|at| at > Utc::now());
            if !current {
                return Err(refused());
            }
            Ok(Principal {
                org: claims.org,
                subject: claims.sub,
                role: None,
                session: None,
                scopes: state.scopes,
                vault_ids: state
                    .vault_ids
                    .into_iter()
                    .map(VaultId::from_uuid)
                    .collect(),
                client_ip: None,
            })
        }
        // A state of the other kind cannot come from `who_of`; refuse rather than guess.
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use oxvault_core::claims::{TOKEN_AUDIENCE, TOKEN_ISSUER};

    use super::*;
    use crate::store::agents::AgentState;
    use crate::store::sessions::UserState;

    fn claims(sub: Subject, org: Uuid, tv: i64) -> Claims {
        let user = matches!(sub, Subject::User(_));
        Claims {
            iss: TOKEN_ISSUER.to_owned(),
            aud: TOKEN_AUDIENCE.to_owned(),
            sub,
            org: OrgId::from_uuid(org),
            iat: 0,
            exp: i64::MAX,
            jti: Uuid::new_v4(),
            tv,
            sid: user.then(Uuid::new_v4),
            role: None,
            scopes: None,
            vault_ids: None,
        }
    }

    fn user_state(org: Uuid, tv: i64, live: bool) -> Option<PrincipalState> {
        Some(PrincipalState::User(UserState {
            org_id: org,
            role: Role::Member,
            token_version: tv,
            session_live: live,
        }))
    }

    fn agent_state(
        org: Uuid,
        tv: i64,
        active: bool,
        expires_in: Option<i64>,
    ) -> Option<PrincipalState> {
        Some(PrincipalState::Agent(AgentState {
            org_id: org,
            is_active: active,
            expires_at: expires_in.map(|secs| Utc::now() + Duration::seconds(secs)),
            token_version: tv,
            scopes: vec!["secrets:read".to_owned()],
            vault_ids: Vec::new(),
        }))
    }

    fn refused(result: Result<Principal, ServiceError>) -> bool {
        matches!(result, Err(ServiceError::Unauthenticated(_)))
    }

    #[test]
    fn a_user_token_stands_only_while_its_org_version_and_session_do() {
        let org = Uuid::new_v4();
        let token = claims(Subject::User(UserId::from_uuid(Uuid::new_v4())), org, 3);
        let principal = admit(&token, user_state(org, 3, true)).unwrap();
        assert_eq!(
            principal.role,
            Some(Role::Member),
            "the role comes from the database"
        );
        assert_eq!(principal.session, token.sid);

        assert!(refused(admit(&token, None)), "no such user");
        assert!(
            refused(admit(&token, user_state(org, 4, true))),
            "version bumped"
        );
        assert!(
            refused(admit(&token, user_state(Uuid::new_v4(), 3, true))),
            "moved org"
        );
        assert!(
            refused(admit(&token, user_state(org, 3, false))),
            "session ended"
        );
        assert!(
            refused(admit(&token, agent_state(org, 3, true, None))),
            "state of an agent"
        );
    }

    #[test]
    fn an_agent_token_stands_only_while_the_agent_is_active_and_unexpired() {
        let org = Uuid::new_v4();
        let token = claims(Subject::Agent(AgentId::from_uuid(Uuid::new_v4())), org, 0);
        let principal = admit(&token, agent_state(org, 0, true, Some(60))).unwrap();
        assert_eq!(
            principal.scopes,
            ["secrets:read"],
            "scopes come from the database"
        );
        assert_eq!(principal.role, None);

        assert!(
            refused(admit(&token, agent_state(org, 0, false, None))),
            "deactivated"
        );
        assert!(
            refused(admit(&token, agent_state(org, 0, true, Some(-1)))),
            "expired"
        );
        assert!(
            refused(admit(&token, agent_state(org, 1, true, None))),
            "version bumped"
        );
        assert!(
            refused(admit(&token, agent_state(Uuid::new_v4(), 0, true, None))),
            "other org"
        );
        assert!(
            refused(admit(&token, user_state(org, 0, true))),
            "state of a user"
        );
    }

    #[test]
    fn a_user_token_without_a_session_names_nobody() {
        let mut token = claims(
            Subject::User(UserId::from_uuid(Uuid::new_v4())),
            Uuid::new_v4(),
            0,
        );
        token.sid = None;
        assert!(matches!(
            who_of(&token),
            Err(ServiceError::Unauthenticated(_))
        ));
    }
}
