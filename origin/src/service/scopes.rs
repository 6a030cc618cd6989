//! Scope lists as personal API keys and agents are given them: names from the vocabulary of
//! [`oxvault_core::scope`] only, so a typo cannot silently grant nothing (or, worse, be read
//! one day as something wider). Enforcement is in `crate::http::scopes`.

use oxvault_core::scope::{Scope, parse_scopes};

use super::ServiceError;

/// Most names in one list, before duplicates are dropped (the vocabulary has fewer).
pub(crate) const MAX_SCOPES: usize = 32;

/// Checks a list as given at creation or update: every name known, at most [`MAX_SCOPES`];
/// returns the names without duplicates, in their order.
pub(crate) fn checked(names: Vec<String>) -> Result<Vec<String>, ServiceError> {
    if names.len() > MAX_SCOPES {
        return Err(ServiceError::Invalid(format!(
            "at most {MAX_SCOPES} scopes are allowed"
        )));
    }
    let scopes = parse_scopes(&names).map_err(|err| ServiceError::Invalid(err.to_string()))?;
    Ok(scopes.iter().map(Scope::to_string).collect())
}

/// Whether a scoped session holding `held` may hand out `requested`: a non-empty list, each
/// of whose scopes one of `held` grants entirely. An empty `requested` would be unscoped,
/// wider than any scoped session.
pub(crate) fn within(requested: &[String], held: &[String]) -> bool {
    let held: Vec<Scope> = held
        .iter()
        .filter_map(|name| Scope::parse(name).ok())
        .collect();
    !requested.is_empty()
        && requested
            .iter()
            .all(|name| Scope::parse(name).is_ok_and(|scope| scope.within(&held)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn known_names_are_kept_once_in_order() {
        assert_eq!(
            checked(names(&["vaults:read", "secrets:*", "vaults:read"])).unwrap(),
            names(&["vaults:read", "secrets:*"])
        );
        assert!(checked(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_and_long_lists_are_refused() {
        for bad in [
            "",
            "vault:read",
            "Vaults:read",
            "vaults read",
            "audit:write",
            &"a".repeat(65),
        ] {
            assert!(checked(names(&[bad])).is_err(), "{bad:?} was accepted");
        }
        assert!(checked(vec!["*".to_owned(); MAX_SCOPES + 1]).is_err());
    }

    #[test]
    fn a_scoped_session_hands_out_only_what_it_holds_and_never_an_unscoped_list() {
        let held = names(&["secrets:*", "vaults:read"]);
        assert!(within(&names(&["secrets:read", "vaults:read"]), &held));
        assert!(!within(&names(&["vaults:write"]), &held));
        assert!(!within(&names(&["*"]), &held));
        assert!(!within(&[], &held));
        assert!(within(&names(&["*"]), &names(&["*"])));
    }
}
