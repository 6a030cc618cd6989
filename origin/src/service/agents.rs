//! Agents: AI identities of an org, authenticated by `ocv_` keys, and the exchange of such a
//! key for a short-lived access token.
//!
//! Owners and admins create, change, deactivate agents and rotate their keys; any user of the
//! org may look at them; an agent may look at itself. Every change to an agent bumps its token
//! version in the same statement, and [`super::auth::AuthService::authenticate`] compares that
//! version on every request, so a change takes effect at once on tokens already handed out
//! (SECURITY.md cases 6 and 11).
//!
//! Keys are stored as SHA-256 hashes next to their public lookup prefix. A key whose format or
//! checksum is wrong is refused before any database lookup ([`parse_agent_key`]).
//!
//! Audit: `agent.register`, `agent.update`, `agent.rotate_key` and `agent.deactivate` commit
//! with the act; a key exchange records `auth.success` (method `agent_token`) or, on a
//! transaction of its own, `auth.failure`. A refusal names the agent (and its org) when the key
//! matched one or when the caller named an existing agent; a malformed key names nobody, since
//! naming it would take a lookup. No key, nor any part of one, goes on the record.

use oxvault_core::page::{Page, TimeKey, finish_page};
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use oxvault_core::api_key::{self, KEY_SECRET_BYTES, KeyKind, ParsedKey};
use oxvault_core::auth::{
    AgentCreatedResponse, AgentKeyRotatedResponse, AgentListResponse, AgentResponse,
    AgentSelfResponse, AgentTokenRequest, AgentTokenResponse, CreateAgentRequest,
    UpdateAgentRequest,
};
use oxvault_core::ids::{AgentId, OrgId, UserId, VaultId};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::ServiceError;
use super::audit::{Actor, Event};
use super::auth::{AuthService, Method, Target, auth_failure, auth_success, refuse, token_hash};
use super::principal::Principal;
use super::scopes;
use crate::store::StoreError;
use crate::store::agents::{self, AgentChanges, AgentKeyRow, AgentRow, NewAgent};

/// The one answer to a key exchange that fails, whatever failed.
const BAD_AGENT_CREDENTIALS: &str = "invalid agent credentials";
/// How agents authenticate here: always with a key.
const AUTH_METHOD: &str = "api_key";

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_VAULT_IDS: usize = 100;
/// Bounds of an agent's access-token lifetime: a minute to a day.
const TOKEN_TTL_SECONDS: std::ops::RangeInclusive<i32> = 60..=86_400;

/// The agents of an org; cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentsService {
    pool: PgPool,
    auth: AuthService,
    /// Billing tier limits, checked when an agent is registered (see [`Self::with_tiers`]).
    tiers: Option<super::billing::Tiers>,
}

/// Checks that `text` is a well-formed agent key (length, `ocv_` prefix, characters,
/// checksum) and returns its lookup prefix. Pure: no I/O, so a malformed or made-up key costs
/// the server nothing and never reaches the database (SECURITY.md case 6).
pub(crate) fn parse_agent_key(text: &str) -> Result<ParsedKey, ServiceError> {
    match api_key::parse_key(text) {
        Ok(parsed) if parsed.kind == KeyKind::Agent => Ok(parsed),
        _ => Err(ServiceError::Unauthenticated(BAD_AGENT_CREDENTIALS)),
    }
}

/// A fresh agent key: 192 bits from the OS, in the `ocv_` format.
fn new_agent_key() -> Result<String, ServiceError> {
    let mut secret = Zeroizing::new([0u8; KEY_SECRET_BYTES]);
    OsRng
        .try_fill_bytes(secret.as_mut_slice())
        .map_err(ServiceError::internal)?;
    Ok(api_key::format_key(KeyKind::Agent, &secret))
}

/// The lookup prefix of a key this service just formatted.
fn lookup_prefix(key: &str) -> Result<String, ServiceError> {
    api_key::parse_key(key)
        .map(|parsed| parsed.lookup_prefix)
        .map_err(ServiceError::internal)
}

fn validate_name(name: &str) -> Result<String, ServiceError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ServiceError::Invalid(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A trimmed description; empty means none.
fn validate_description(description: &str) -> Result<Option<String>, ServiceError> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ServiceError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok((!description.is_empty()).then(|| description.to_owned()))
}

/// At most [`MAX_VAULT_IDS`] vaults; duplicates are dropped.
// TODO(vaults): once vaults exist, refuse ids that are not vaults of the caller's org (404).
fn validate_vault_ids(vault_ids: Vec<VaultId>) -> Result<Vec<Uuid>, ServiceError> {
    if vault_ids.len() > MAX_VAULT_IDS {
        return Err(ServiceError::Invalid(format!(
            "at most {MAX_VAULT_IDS} vault_ids are allowed"
        )));
    }
    let mut kept: Vec<Uuid> = Vec::with_capacity(vault_ids.len());
    for id in vault_ids {
        let id = *id.as_uuid();
        if !kept.contains(&id) {
            kept.push(id);
        }
    }
    Ok(kept)
}

fn validate_ttl(seconds: i32) -> Result<i32, ServiceError> {
    if TOKEN_TTL_SECONDS.contains(&seconds) {
        Ok(seconds)
    } else {
        Err(ServiceError::Invalid(format!(
            "token_ttl_seconds must be between {} and {}",
            TOKEN_TTL_SECONDS.start(),
            TOKEN_TTL_SECONDS.end()
        )))
    }
}

fn validate_expiry(at: chrono::DateTime<Utc>) -> Result<chrono::DateTime<Utc>, ServiceError> {
    if at > Utc::now() {
        Ok(at)
    } else {
        Err(ServiceError::Invalid(
            "expires_at must be in the future".into(),
        ))
    }
}

/// Turns a PATCH body into checked changes.
fn validate_changes(request: UpdateAgentRequest) -> Result<AgentChanges, ServiceError> {
    Ok(AgentChanges {
        name: request.name.as_deref().map(validate_name).transpose()?,
        description: request
            .description
            .as_deref()
            .map(validate_description)
            .transpose()?,
        scopes: request.scopes.map(scopes::checked).transpose()?,
        vault_ids: request.vault_ids.map(validate_vault_ids).transpose()?,
        is_active: request.is_active,
        token_ttl_seconds: request.token_ttl_seconds.map(validate_ttl).transpose()?,
        expires_at: request.expires_at.map(validate_expiry).transpose()?,
    })
}

fn is_unchanged(changes: &AgentChanges) -> bool {
    let AgentChanges {
        name,
        description,
        scopes,
        vault_ids,
        is_active,
        token_ttl_seconds,
        expires_at,
    } = changes;
    name.is_none()
        && description.is_none()
        && scopes.is_none()
        && vault_ids.is_none()
        && is_active.is_none()
        && token_ttl_seconds.is_none()
        && expires_at.is_none()
}

/// Ids as the audit details hold them.
fn uuid_strings(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

/// The names of the fields a PATCH changes.
fn changed_fields(changes: &AgentChanges) -> Vec<&'static str> {
    let AgentChanges {
        name,
        description,
        scopes,
        vault_ids,
        is_active,
        token_ttl_seconds,
        expires_at,
    } = changes;
    [
        (name.is_some(), "name"),
        (description.is_some(), "description"),
        (scopes.is_some(), "scopes"),
        (vault_ids.is_some(), "vault_ids"),
        (is_active.is_some(), "is_active"),
        (token_ttl_seconds.is_some(), "token_ttl_seconds"),
        (expires_at.is_some(), "expires_at"),
    ]
    .into_iter()
    .filter_map(|(changed, field)| changed.then_some(field))
    .collect()
}

/// An agent as the target of a key exchange.
fn agent_target(agent_id: AgentId, org_id: Uuid) -> Target {
    Target {
        org: OrgId::from_uuid(org_id),
        actor: Actor::Agent(agent_id),
        resource_id: *agent_id.as_uuid(),
    }
}

fn vault_ids_of(ids: &[Uuid]) -> Vec<VaultId> {
    ids.iter().copied().map(VaultId::from_uuid).collect()
}

/// An agent row as the org's users see it.
fn response(row: AgentRow) -> AgentResponse {
    AgentResponse {
        id: AgentId::from_uuid(row.id),
        name: row.name,
        description: row.description,
        auth_method: AUTH_METHOD.into(),
        scopes: row.scopes,
        is_active: row.is_active,
        intents_api_enabled: false,
        shroud_enabled: false,
        token_ttl_seconds: row.token_ttl_seconds,
        vault_ids: vault_ids_of(&row.vault_ids),
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

/// The one candidate whose stored hash equals `hash`. Every candidate is compared in
/// constant time, and all of them are compared, so the time taken says nothing about where
/// or whether a hash matched.
fn matching_key(candidates: Vec<AgentKeyRow>, hash: &[u8]) -> Option<AgentKeyRow> {
    let mut found = None;
    for candidate in candidates {
        if bool::from(candidate.key_hash.as_slice().ct_eq(hash)) {
            found = Some(candidate);
        }
    }
    found
}

impl AgentsService {
    pub fn new(pool: PgPool, auth: AuthService) -> Self {
        Self {
            pool,
            auth,
            tiers: None,
        }
    }

    /// The service with the tier limits its registrations are checked against; without them
    /// [`Self::create`] fails closed.
    pub fn with_tiers(mut self, tiers: super::billing::Tiers) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// Registers an agent in the caller's org and returns its key, this once.
    pub async fn create(
        &self,
        principal: &Principal,
        request: CreateAgentRequest,
    ) -> Result<AgentCreatedResponse, ServiceError> {
        let created_by = principal.require_manager()?;
        let name = validate_name(&request.name)?;
        let description = request
            .description
            .as_deref()
            .map(validate_description)
            .transpose()?
            .flatten();
        let scopes = scopes::checked(request.scopes.unwrap_or_default())?;
        let vault_ids = validate_vault_ids(request.vault_ids.unwrap_or_default())?;
        let token_ttl_seconds = request.token_ttl_seconds.map(validate_ttl).transpose()?;
        let expires_at = request.expires_at.map(validate_expiry).transpose()?;

        let key = new_agent_key()?;
        let key_prefix = lookup_prefix(&key)?;
        let key_hash = token_hash(&key);
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // Counts and inserts under the org's lock: exact with any number of origins.
        let agents_limit = super::billing::Resource::Agents;
        super::billing::require_room(self.tiers.as_ref(), &mut tx, principal.org, agents_limit)
            .await?;
        let row = agents::insert_agent(
            &mut tx,
            &NewAgent {
                id: Uuid::new_v4(),
                org_id: *principal.org.as_uuid(),
                name: &name,
                description: description.as_deref(),
                scopes: &scopes,
                vault_ids: &vault_ids,
                token_ttl_seconds,
                expires_at,
                key_prefix: &key_prefix,
                key_hash: &key_hash,
                created_by: *created_by.as_uuid(),
            },
        )
        .await?;
        let event = Event::by(principal, "agent.register")
            .on("agent", row.id)
            .detail("name", row.name.as_str())
            .detail("scopes", row.scopes.clone())
            .detail("vault_ids", uuid_strings(&row.vault_ids));
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(agent_id = %row.id, org_id = %row.org_id, "agent created");
        Ok(AgentCreatedResponse {
            agent: response(row),
            api_key: key.into(),
        })
    }

    /// One page of the agents of the caller's org, oldest first (users only).
    pub async fn list(
        &self,
        principal: &Principal,
        page: Page<TimeKey>,
    ) -> Result<AgentListResponse, ServiceError> {
        principal.require_user()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let org = *principal.org.as_uuid();
        let mut rows = agents::list_in_org(&mut conn, org, page.after, page.fetch()).await?;
        let next_cursor = finish_page(&mut rows, page.len(), |row| TimeKey {
            created_at: row.created_at,
            id: row.id,
        });
        Ok(AgentListResponse {
            agents: rows.into_iter().map(response).collect(),
            next_cursor,
        })
    }

    /// One agent of the caller's org (users only); another org's agent is not found.
    pub async fn get(
        &self,
        principal: &Principal,
        agent_id: AgentId,
    ) -> Result<AgentResponse, ServiceError> {
        principal.require_user()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        agents::find_in_org(&mut conn, *principal.org.as_uuid(), *agent_id.as_uuid())
            .await?
            .map(response)
            .ok_or(ServiceError::NotFound("agent"))
    }

    /// Changes an agent (owners and admins). Any change revokes the agent's tokens: it must
    /// exchange its key again and gets a token that reflects the change.
    pub async fn update(
        &self,
        principal: &Principal,
        agent_id: AgentId,
        request: UpdateAgentRequest,
    ) -> Result<AgentResponse, ServiceError> {
        principal.require_manager()?;
        let changes = validate_changes(request)?;
        let org_id = *principal.org.as_uuid();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        if is_unchanged(&changes) {
            // Nothing changes, the tokens stay good, and there is no act to record.
            return agents::find_in_org(&mut tx, org_id, *agent_id.as_uuid())
                .await?
                .map(response)
                .ok_or(ServiceError::NotFound("agent"));
        }
        let row = agents::update_in_org(&mut tx, org_id, *agent_id.as_uuid(), &changes)
            .await?
            .ok_or(ServiceError::NotFound("agent"))?;
        let mut event = Event::by(principal, "agent.update")
            .on("agent", row.id)
            .detail("fields", changed_fields(&changes));
        // What widens or narrows the agent's reach is worth its value on the record.
        if changes.scopes.is_some() {
            event = event.detail("scopes", row.scopes.clone());
        }
        if changes.vault_ids.is_some() {
            event = event.detail("vault_ids", uuid_strings(&row.vault_ids));
        }
        if let Some(is_active) = changes.is_active {
            event = event.detail("is_active", is_active);
        }
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(agent_id = %row.id, org_id = %row.org_id, "agent updated");
        Ok(response(row))
    }

    /// Deactivates an agent (owners and admins): its key and tokens stop working at once.
    /// The row stays, so the audit trail keeps naming it.
    pub async fn deactivate(
        &self,
        principal: &Principal,
        agent_id: AgentId,
    ) -> Result<(), ServiceError> {
        principal.require_manager()?;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        if !agents::deactivate_in_org(&mut tx, *principal.org.as_uuid(), *agent_id.as_uuid())
            .await?
        {
            return Err(ServiceError::NotFound("agent"));
        }
        let event = Event::by(principal, "agent.deactivate").on("agent", agent_id.as_uuid());
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(%agent_id, org_id = %principal.org, "agent deactivated");
        Ok(())
    }

    /// Gives an agent a new key (owners and admins); the old key and every token minted with
    /// it stop working at once.
    pub async fn rotate_key(
        &self,
        principal: &Principal,
        agent_id: AgentId,
    ) -> Result<AgentKeyRotatedResponse, ServiceError> {
        principal.require_manager()?;
        let key = new_agent_key()?;
        let key_prefix = lookup_prefix(&key)?;
        let key_hash = token_hash(&key);
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let replaced = agents::replace_key_in_org(
            &mut tx,
            *principal.org.as_uuid(),
            *agent_id.as_uuid(),
            &key_prefix,
            &key_hash,
        )
        .await?;
        if !replaced {
            return Err(ServiceError::NotFound("agent"));
        }
        let event = Event::by(principal, "agent.rotate_key").on("agent", agent_id.as_uuid());
        self.auth.audit().commit(tx, event).await?;
        tracing::info!(%agent_id, org_id = %principal.org, "agent key rotated");
        Ok(AgentKeyRotatedResponse {
            api_key: key.into(),
        })
    }

    /// The calling agent's view of itself (agents only).
    pub async fn me(&self, principal: &Principal) -> Result<AgentSelfResponse, ServiceError> {
        let agent_id = principal.require_agent()?;
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let row = agents::find_in_org(&mut conn, *principal.org.as_uuid(), *agent_id.as_uuid())
            .await?
            .ok_or(ServiceError::NotFound("agent"))?;
        Ok(AgentSelfResponse {
            id: AgentId::from_uuid(row.id),
            name: row.name,
            description: row.description,
            org_id: OrgId::from_uuid(row.org_id),
            scopes: row.scopes,
            is_active: row.is_active,
            intents_api_enabled: false,
            shroud_enabled: false,
            vault_ids: vault_ids_of(&row.vault_ids),
            created_by: row.created_by.map(UserId::from_uuid),
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }

    /// Exchanges an agent key (and, optionally, the agent id it belongs to) for an access
    /// token. Every failure gives the same 401, and a malformed key is refused before the
    /// database is asked anything.
    pub async fn exchange(
        &self,
        request: AgentTokenRequest,
        ip: Option<IpAddr>,
    ) -> Result<AgentTokenResponse, ServiceError> {
        let refused = |reason, target| {
            let event = auth_failure(Method::AgentToken, reason, "agent", target, ip);
            let refusal = ServiceError::Unauthenticated(BAD_AGENT_CREDENTIALS);
            refuse(self.auth.audit(), event, refusal)
        };
        // Checked before any lookup (SECURITY.md 6); the refusal is still recorded.
        let Ok(parsed) = parse_agent_key(request.api_key.expose()) else {
            return Err(refused("malformed_key", None).await);
        };
        let claimed = match request.agent_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match AgentId::parse(text) {
                Ok(id) => Some(id),
                Err(_) => return Err(refused("malformed_agent_id", None).await),
            },
        };
        let hash = token_hash(request.api_key.expose());

        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let candidates = agents::find_by_key_prefix(&mut conn, &parsed.lookup_prefix).await?;
        let Some(agent) = matching_key(candidates, &hash) else {
            // A wrong key for a named agent goes on that agent's record, as a wrong password
            // for a known email goes on the user's.
            let named = match claimed {
                Some(id) => agents::agent_state(&mut conn, *id.as_uuid())
                    .await?
                    .map(|state| agent_target(id, state.org_id)),
                None => None,
            };
            drop(conn);
            return Err(refused("unknown_key", named).await);
        };
        drop(conn);
        let agent_id = AgentId::from_uuid(agent.id);
        let target = agent_target(agent_id, agent.org_id);
        let reason = if !agent.is_active {
            Some("inactive")
        } else if agent.expires_at.is_some_and(|at| at <= Utc::now()) {
            Some("expired")
        } else if claimed.is_some_and(|id| *id.as_uuid() != agent.id) {
            Some("agent_mismatch")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(refused(reason, Some(target)).await);
        }

        let vault_ids = vault_ids_of(&agent.vault_ids);
        // A token minted here carries the version just read: if the key is rotated or the
        // agent changed in between, the token is refused on first use.
        let (access_token, expires_in) = self
            .auth
            .agent_access_token(
                agent_id,
                OrgId::from_uuid(agent.org_id),
                agent.token_version,
                agent
                    .token_ttl_seconds
                    .and_then(|secs| u64::try_from(secs).ok())
                    .map(Duration::from_secs),
                agent.scopes,
                vault_ids.clone(),
            )
            .await?;
        // The token is answered only once its issue is on the record.
        let event = auth_success(Method::AgentToken, "agent", target, ip);
        self.auth.audit().record(event).await?;
        Ok(AgentTokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in,
            agent_id,
            vault_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::crypto::Keyring;
    use crate::crypto::testing::NoHsm;
    use crate::service::auth::AuthSettings;
    use crate::service::passwords::Passwords;
    use crate::service::tokens::Tokens;

    /// A service whose database refuses every connection (nothing listens on port 1), so
    /// any database work shows as `Unavailable`.
    fn service_without_database() -> AgentsService {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let keyring = Keyring::new(Arc::new(NoHsm), Arc::new(NoHsm), 1);
        let statements = crate::store::StatementPool::new(
            "postgres://nobody@127.0.0.1:1/none".parse().unwrap(),
            1,
            Duration::from_secs(2),
        );
        let (audit, _) = crate::service::audit::AuditLog::start(
            pool.clone(),
            statements.clone(),
            keyring.clone(),
        );
        let auth = AuthService::new(
            pool.clone(),
            statements,
            audit,
            Passwords::new(1).unwrap(),
            Tokens::new(keyring),
            AuthSettings::default(),
            None,
        );
        AgentsService::new(pool, auth)
    }

    fn agent_key(seed: u8) -> String {
        api_key::format_key(KeyKind::Agent, &[seed; KEY_SECRET_BYTES])
    }

    fn exchange_request(api_key: String) -> AgentTokenRequest {
        AgentTokenRequest {
            api_key: api_key.into(),
            agent_id: None,
        }
    }

    #[test]
    fn a_well_formed_agent_key_parses_to_its_lookup_prefix() {
        let key = agent_key(7);
        assert_eq!(parse_agent_key(&key).unwrap().lookup_prefix, key[..16]);
    }

    #[test]
    fn bad_checksums_wrong_prefixes_and_garbage_are_refused_by_the_parser() {
        let key = agent_key(7);
        let last = if key.ends_with('0') { '1' } else { '0' };
        let cases = [
            format!("{}{last}", &key[..42]),
            api_key::format_key(KeyKind::User, &[7; KEY_SECRET_BYTES]),
            format!("ghp_{}", &key[4..]),
            "ocv_not-a-key".to_owned(),
            String::new(),
        ];
        for case in cases {
            assert!(
                matches!(
                    parse_agent_key(&case),
                    Err(ServiceError::Unauthenticated(BAD_AGENT_CREDENTIALS))
                ),
                "{case}"
            );
        }
    }

    #[tokio::test]
    async fn a_malformed_key_is_refused_without_a_lookup() {
        // The refusal is recorded, which this service cannot do (no database, no HSM): the
        // answer is the audit trail's 503, not the database lookup's (the test below).
        let service = service_without_database();
        let key = agent_key(9);
        let bad_checksum = format!(
            "{}{}",
            &key[..42],
            if key.ends_with('0') { '1' } else { '0' }
        );
        for api_key in [bad_checksum, format!("1ck_{}", &key[4..]), "garbage".into()] {
            let result = service
                .exchange(exchange_request(api_key.clone()), None)
                .await;
            assert!(
                matches!(result, Err(ServiceError::Unavailable("audit trail"))),
                "{api_key}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_well_formed_key_does_reach_the_database() {
        // The control for the test above: were the database asked, it would show.
        let service = service_without_database();
        let result = service.exchange(exchange_request(agent_key(9)), None).await;
        assert!(
            matches!(result, Err(ServiceError::Unavailable("database"))),
            "{result:?}"
        );
    }

    #[test]
    fn new_keys_are_agent_keys_and_differ_each_time() {
        let first = new_agent_key().unwrap();
        let second = new_agent_key().unwrap();
        assert_ne!(first, second);
        assert_eq!(parse_agent_key(&first).unwrap().kind, KeyKind::Agent);
        assert!(first.starts_with("ocv_"));
    }

    #[test]
    fn only_the_candidate_with_the_same_hash_matches() {
        let row = |id: u128, key: &str| AgentKeyRow {
            id: Uuid::from_u128(id),
            org_id: Uuid::nil(),
            key_hash: token_hash(key),
            is_active: true,
            expires_at: None,
            token_version: 0,
            token_ttl_seconds: None,
            scopes: Vec::new(),
            vault_ids: Vec::new(),
        };
        let (a, b) = (agent_key(1), agent_key(2));
        let found = matching_key(vec![row(1, &a), row(2, &b)], &token_hash(&b)).unwrap();
        assert_eq!(found.id, Uuid::from_u128(2));
        assert!(matching_key(vec![row(1, &a)], &token_hash(&b)).is_none());
        assert!(matching_key(vec![row(1, &a)], &[]).is_none());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  bot  ").unwrap(), "bot");
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"é".repeat(100)).is_ok());
        assert!(validate_name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn token_lifetimes_are_a_minute_to_a_day() {
        assert!(validate_ttl(59).is_err());
        assert!(validate_ttl(60).is_ok());
        assert!(validate_ttl(86_400).is_ok());
        assert!(validate_ttl(86_401).is_err());
        assert!(validate_ttl(-1).is_err());
    }

    #[test]
    fn an_update_event_names_the_changed_fields_in_a_fixed_order() {
        let changes = validate_changes(UpdateAgentRequest {
            scopes: Some(vec!["vaults:read".into()]),
            name: Some("bot".into()),
            is_active: Some(false),
            ..UpdateAgentRequest::default()
        })
        .unwrap();
        assert_eq!(changed_fields(&changes), ["name", "scopes", "is_active"]);
        assert!(changed_fields(&AgentChanges::default()).is_empty());
    }

    #[test]
    fn an_empty_patch_is_no_change_and_an_empty_description_clears_it() {
        assert!(is_unchanged(
            &validate_changes(UpdateAgentRequest::default()).unwrap()
        ));
        let changes = validate_changes(UpdateAgentRequest {
            description: Some("  ".into()),
            ..UpdateAgentRequest::default()
        })
        .unwrap();
        assert!(!is_unchanged(&changes));
        assert_eq!(changes.description, Some(None));
    }
}
