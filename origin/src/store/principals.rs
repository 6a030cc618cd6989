//! The live state of the principal a verified token names: whether the token still stands
//! is decided from it on every request (token version, session, activity, expiry).
//!
//! It is read on its own ([`state`]) before most requests, or as extra columns of the
//! statement a request makes anyway (a secret read, [`super::read_view`]), so that the check
//! costs that request no round trip of its own.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use super::agents::{self, AgentState};
use super::sessions::{self, UserState};

/// Whom a verified token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A user, through one login session.
    User {
        user_id: Uuid,
        session_id: Uuid,
    },
    Agent {
        agent_id: Uuid,
    },
}

/// What [`state`] found; `None` of it: no such principal.
#[derive(Debug, Clone)]
pub enum PrincipalState {
    User(UserState),
    Agent(AgentState),
}

/// The principal's live state in one indexed lookup.
pub async fn state(
    conn: &mut PgConnection,
    who: Who,
) -> Result<Option<PrincipalState>, StoreError> {
    Ok(match who {
        Who::User {
            user_id,
            session_id,
        } => sessions::user_state(conn, user_id, session_id)
            .await?
            .map(PrincipalState::User),
        Who::Agent { agent_id } => agents::agent_state(conn, agent_id)
            .await?
            .map(PrincipalState::Agent),
    })
}
