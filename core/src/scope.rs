//! Scopes: what a personal API key or an agent may do, whatever else its role or policies
//! allow. A scope narrows, it never widens: a session with scopes may call a route only when
//! one of them covers what the route needs, *and* the caller's role and policies allow the act.
//!
//! The vocabulary is fixed and small: `<resource>:<action>` with the actions `read`, `write`
//! and `*` (both), and `*` for everything. `audit` and `billing` are read-only resources, so
//! `audit:write` is not a scope. Unknown names are refused where scopes are set (key and agent
//! creation); an unknown name already stored (from before the vocabulary existed) grants
//! nothing.
//!
//! A session with no scopes at all is unscoped: it keeps what its role and policies give
//! (1Claw's behaviour for keys and agents made without scopes).

use std::fmt;

/// What a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Vaults,
    Secrets,
    Shares,
    Policies,
    Agents,
    Org,
    ApiKeys,
    Audit,
    Billing,
}

impl Resource {
    /// Every resource, in the order the documentation lists them.
    pub const ALL: [Resource; 9] = [
        Self::Vaults,
        Self::Secrets,
        Self::Shares,
        Self::Policies,
        Self::Agents,
        Self::Org,
        Self::ApiKeys,
        Self::Audit,
        Self::Billing,
    ];

    /// The resource's name in a scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vaults => "vaults",
            Self::Secrets => "secrets",
            Self::Shares => "shares",
            Self::Policies => "policies",
            Self::Agents => "agents",
            Self::Org => "org",
            Self::ApiKeys => "api_keys",
            Self::Audit => "audit",
            Self::Billing => "billing",
        }
    }

    /// Whether the resource has anything to write through the API.
    fn writable(self) -> bool {
        !matches!(self, Self::Audit | Self::Billing)
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|resource| resource.as_str() == text)
    }
}

/// Read or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// One act on one resource: what a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    pub resource: Resource,
    pub action: Action,
}

impl Permission {
    pub const fn new(resource: Resource, action: Action) -> Self {
        Self { resource, action }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource.as_str(), self.action.as_str())
    }
}

/// One granted scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `*`: everything the role and policies allow.
    All,
    /// `<resource>:*`: reading and changing one resource.
    Any(Resource),
    /// `<resource>:read` or `<resource>:write`.
    Exactly(Permission),
}

/// The text is not a scope of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {0:?}: expected *, or <resource>:read, :write or :* with a resource of {RESOURCES}"
)]
pub struct UnknownScope(pub String);

/// The resource names, for error messages and docs.
const RESOURCES: &str =
    "vaults, secrets, shares, policies, agents, org, api_keys, audit (read), billing (read)";

impl Scope {
    /// Parses one scope name, exactly as written (no case folding, no spaces).
    pub fn parse(text: &str) -> Result<Self, UnknownScope> {
        let unknown = || UnknownScope(text.chars().take(64).collect());
        if text == "*" {
            return Ok(Self::All);
        }
        let (resource, action) = text.split_once(':').ok_or_else(unknown)?;
        let resource = Resource::parse(resource).ok_or_else(unknown)?;
        match action {
            "*" => Ok(Self::Any(resource)),
            "read" => Ok(Self::Exactly(Permission::new(resource, Action::Read))),
            "write" if resource.writable() => {
                Ok(Self::Exactly(Permission::new(resource, Action::Write)))
            }
            _ => Err(unknown()),
        }
    }

    /// Whether this scope grants `needed`.
    pub fn covers(self, needed: Permission) -> bool {
        match self {
            Self::All => true,
            Self::Any(resource) => resource == needed.resource,
            Self::Exactly(granted) => granted == needed,
        }
    }

    /// Whether everything this scope grants is also granted by one of `held` (a scoped key
    /// may only mint keys no wider than itself).
    pub fn within(self, held: &[Scope]) -> bool {
        held.iter().any(|outer| match (*outer, self) {
            (Self::All, _) => true,
            (Self::Any(a), Self::Any(b)) => a == b,
            (Self::Any(a), Self::Exactly(p)) => a == p.resource,
            (Self::Exactly(a), Self::Exactly(b)) => a == b,
            _ => false,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Any(resource) => write!(f, "{}:*", resource.as_str()),
            Self::Exactly(permission) => permission.fmt(f),
        }
    }
}

/// What a route asks of the session that calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any session: the caller's own profile, signing out.
    Session,
    /// A scoped session needs a scope that covers this permission.
    Scoped(Permission),
    /// Only an unscoped session or one with `*`: acts on the account itself (password change),
    /// which no narrowed credential should reach.
    FullAccess,
}

impl Requirement {
    /// Whether a session holding `scopes` (as stored: names) meets this requirement. No scopes
    /// at all is an unscoped session; names outside the vocabulary grant nothing.
    pub fn allows<S: AsRef<str>>(self, scopes: &[S]) -> bool {
        if scopes.is_empty() {
            return true;
        }
        let mut granted = scopes
            .iter()
            .filter_map(|name| Scope::parse(name.as_ref()).ok());
        match self {
            Self::Session => true,
            Self::Scoped(needed) => granted.any(|scope| scope.covers(needed)),
            Self::FullAccess => granted.any(|scope| scope == Scope::All),
        }
    }

    /// The scope names that meet this requirement in a scoped session, narrowest first, as
    /// the OpenAPI document lists them.
    pub fn scope_names(self) -> Vec<String> {
        match self {
            Self::Session => Vec::new(),
            Self::Scoped(needed) => vec![
                needed.to_string(),
                Scope::Any(needed.resource).to_string(),
                Scope::All.to_string(),
            ],
            Self::FullAccess => vec![Scope::All.to_string()],
        }
    }
}

/// Parses a list of scope names as given at creation: every name must be known; duplicates are
/// dropped, order kept.
pub fn parse_scopes<S: AsRef<str>>(names: &[S]) -> Result<Vec<Scope>, UnknownScope> {
    let mut scopes: Vec<Scope> = Vec::with_capacity(names.len());
    for name in names {
        let scope = Scope::parse(name.as_ref())?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS_READ: Permission = Permission::new(Resource::Secrets, Action::Read);
    const SECRETS_WRITE: Permission = Permission::new(Resource::Secrets, Action::Write);

    #[test]
    fn every_scope_name_parses_back_to_itself() {
        let mut names = vec!["*".to_owned()];
        for resource in Resource::ALL {
            names.push(format!("{}:*", resource.as_str()));
            names.push(format!("{}:read", resource.as_str()));
            if resource.writable() {
                names.push(format!("{}:write", resource.as_str()));
            }
        }
        for name in names {
            assert_eq!(Scope::parse(&name).unwrap().to_string(), name);
        }
    }

    #[test]
    fn names_outside_the_vocabulary_are_refused() {
        for bad in [
            "",
            "secrets",
            "secrets:",
            "secret:read",
            "Secrets:Read",
            "secrets:read ",
            "audit:write",
            "billing:write",
            "secrets:delete",
            "*:read",
            "secrets:read:x",
            "**",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_scope_covers_its_own_permission_its_resource_star_and_star_covers_all() {
        assert!(Scope::parse("secrets:read").unwrap().covers(SECRETS_READ));
        assert!(!Scope::parse("secrets:read").unwrap().covers(SECRETS_WRITE));
        assert!(Scope::parse("secrets:*").unwrap().covers(SECRETS_WRITE));
        assert!(!Scope::parse("vaults:*").unwrap().covers(SECRETS_READ));
        assert!(Scope::All.covers(SECRETS_WRITE));
    }

    #[test]
    fn no_scopes_is_unscoped_and_unknown_stored_names_grant_nothing() {
        let none: [&str; 0] = [];
        assert!(Requirement::Scoped(SECRETS_WRITE).allows(&none));
        assert!(Requirement::FullAccess.allows(&none));
        assert!(!Requirement::Scoped(SECRETS_READ).allows(&["vault:read"]));
        assert!(Requirement::Session.allows(&["vault:read"]));
    }

    #[test]
    fn full_access_needs_star_in_a_scoped_session() {
        assert!(!Requirement::FullAccess.allows(&["secrets:*", "vaults:*"]));
        assert!(Requirement::FullAccess.allows(&["secrets:read", "*"]));
    }

    #[test]
    fn a_scope_is_within_a_list_only_when_something_there_grants_all_of_it() {
        let held = parse_scopes(&["secrets:*", "vaults:read"]).unwrap();
        assert!(Scope::parse("secrets:write").unwrap().within(&held));
        assert!(Scope::parse("secrets:*").unwrap().within(&held));
        assert!(Scope::parse("vaults:read").unwrap().within(&held));
        assert!(!Scope::parse("vaults:*").unwrap().within(&held));
        assert!(!Scope::All.within(&held));
        assert!(Scope::All.within(&[Scope::All]));
    }

    #[test]
    fn parse_scopes_drops_duplicates_and_stops_at_the_first_unknown_name() {
        let parsed = parse_scopes(&["secrets:read", "secrets:read", "*"]).unwrap();
        assert_eq!(
            parsed,
            vec![Scope::parse("secrets:read").unwrap(), Scope::All]
        );
        assert_eq!(
            parse_scopes(&["secrets:read", "nope"]).unwrap_err(),
            UnknownScope("nope".into())
        );
    }

    #[test]
    fn the_document_lists_the_narrowest_scope_first() {
        assert_eq!(
            Requirement::Scoped(SECRETS_READ).scope_names(),
            ["secrets:read", "secrets:*", "*"]
        );
        assert_eq!(Requirement::FullAccess.scope_names(), ["*"]);
        assert!(Requirement::Session.scope_names().is_empty());
    }
}
