//! Policies as evaluated, the conditions they carry, and [`evaluate`], which decides one request
//! against them. Pure, so the origin runs it on every request and the edge could too.

use std::cmp::Reverse;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cidr::Cidr;
use super::pattern::PathPattern;
use super::permission::{Effect, Permission};
use super::time_window::TimeWindow;
use crate::ids::PolicyId;
use crate::secret_path::SecretPath;

/// Extra requirements a request must meet for a policy to apply. All present ones must hold.
///
/// Unknown keys are refused rather than ignored: a condition the client believes it set but
/// the server does not check would make an allow policy wider than its author meant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The request must come from one of these networks. An empty list admits nothing, and
    /// neither does a request whose client IP is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    pub ip_allowlist: Option<Vec<Cidr>>,
    /// The request must come in during this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
}

impl Conditions {
    /// Whether every condition set holds for this request; `true` when none is set.
    pub fn hold(&self, ctx: &RequestContext) -> bool {
        let ip_ok = self.ip_allowlist.as_ref().is_none_or(|allowlist| {
            ctx.client_ip
                .is_some_and(|ip| allowlist.iter().any(|cidr| cidr.contains(ip)))
        });
        let time_ok = self
            .time_window
            .as_ref()
            .is_none_or(|window| window.contains(ctx.now_unix));
        ip_ok && time_ok
    }

    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.ip_allowlist.is_none() && self.time_window.is_none()
    }
}

/// One access policy, as evaluated. Whose it is (principal, vault) is implied by the caller,
/// which passes [`evaluate`] only the policies of one principal on one vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyId,
    pub pattern: PathPattern,
    pub permissions: Vec<Permission>,
    pub effect: Effect,
    /// Higher first. Decides which policy a decision reports, never allow against deny.
    pub priority: i32,
    pub conditions: Conditions,
    /// Unix seconds; the policy stops applying at this instant.
    pub expires_at: Option<i64>,
}

impl Policy {
    /// Whether this policy has a say on this request: not expired, its pattern matches the
    /// path, it lists the permission, and its conditions hold.
    pub fn applies(&self, path: &SecretPath, permission: Permission, ctx: &RequestContext) -> bool {
        self.expires_at.is_none_or(|at| at > ctx.now_unix)
            && self.permissions.contains(&permission)
            && self.pattern.matches(path)
            && self.conditions.hold(ctx)
    }

    /// Whether this policy is reported ahead of `other`: higher priority, then smaller id, so
    /// the answer does not depend on the order policies were loaded in.
    fn ranks_before(&self, other: &Self) -> bool {
        (Reverse(self.priority), self.id) < (Reverse(other.priority), other.id)
    }
}

/// What is known about a request beyond its path and permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// The time of the request, unix seconds.
    pub now_unix: i64,
    /// The client's address as the edge saw it; `None` fails every IP allowlist.
    pub client_ip: Option<IpAddr>,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some allow policy applies and no deny does; `policy` is the highest-ranked allow.
    Allow { policy: PolicyId },
    /// A deny policy applies (`Some`, the highest-ranked one), or nothing does (`None`).
    Deny { policy: Option<PolicyId> },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

/// Evaluates the policies that apply to ONE principal on ONE vault.
///
/// Denied unless some policy allows; any applicable deny beats every applicable allow,
/// whatever the priorities. See the [`policy`](super) module docs for when a policy applies.
pub fn evaluate(
    policies: &[Policy],
    path: &SecretPath,
    permission: Permission,
    ctx: &RequestContext,
) -> Decision {
    let mut best_allow: Option<&Policy> = None;
    let mut best_deny: Option<&Policy> = None;
    for policy in policies
        .iter()
        .filter(|policy| policy.applies(path, permission, ctx))
    {
        let best = match policy.effect {
            Effect::Allow => &mut best_allow,
            Effect::Deny => &mut best_deny,
        };
        if best.is_none_or(|current| policy.ranks_before(current)) {
            *best = Some(policy);
        }
    }
    match (best_deny, best_allow) {
        (Some(deny), _) => Decision::Deny {
            policy: Some(deny.id),
        },
        (None, Some(allow)) => Decision::Allow { policy: allow.id },
        (None, None) => Decision::Deny { policy: None },
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::policy::fixtures::{at, id, ip, path, pattern, window};

    fn ctx() -> RequestContext {
        RequestContext {
            now_unix: at(12, 0),
            client_ip: Some(ip("192.0.2.10")),
        }
    }

    fn allow(n: u128, glob: &str, permissions: &[Permission]) -> Policy {
        Policy {
            id: id(n),
            pattern: pattern(glob),
            permissions: permissions.to_vec(),
            effect: Effect::Allow,
            priority: 0,
            conditions: Conditions::default(),
            expires_at: None,
        }
    }

    fn deny(n: u128, glob: &str, permissions: &[Permission]) -> Policy {
        Policy {
            effect: Effect::Deny,
            ..allow(n, glob, permissions)
        }
    }

    // --- conditions -----------------------------------------------------------------------

    #[test]
    fn no_conditions_always_hold() {
        assert!(Conditions::default().hold(&ctx()));
        assert!(Conditions::default().is_empty());
        let anonymous = RequestContext {
            client_ip: None,
            ..ctx()
        };
        assert!(Conditions::default().hold(&anonymous));
    }

    #[test]
    fn an_ip_allowlist_holds_only_for_clients_in_one_of_its_blocks() {
        let conditions = Conditions {
            ip_allowlist: Some(vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("2001:db8::/32").unwrap(),
            ]),
            time_window: None,
        };
        let from = |client: &str| RequestContext {
            client_ip: Some(ip(client)),
            ..ctx()
        };
        assert!(conditions.hold(&from("10.20.30.40")));
        assert!(conditions.hold(&from("2001:db8::abcd")));
        assert!(conditions.hold(&from("::ffff:10.0.0.1")));
        assert!(!conditions.hold(&from("192.0.2.10")));
        assert!(!conditions.hold(&from("2001:db9::1")));
    }

    #[test]
    fn an_ip_allowlist_fails_when_the_client_ip_is_unknown_or_the_list_is_empty() {
        let listed = Conditions {
            ip_allowlist: Some(vec![Cidr::parse("0.0.0.0/0").unwrap()]),
            time_window: None,
        };
        let anonymous = RequestContext {
            client_ip: None,
            ..ctx()
        };
        assert!(!listed.hold(&anonymous));
        let empty = Conditions {
            ip_allowlist: Some(Vec::new()),
            time_window: None,
        };
        assert!(!empty.hold(&ctx()));
    }

    #[test]
    fn every_condition_must_hold_at_once() {
        let conditions = Conditions {
            ip_allowlist: Some(vec![Cidr::parse("192.0.2.0/24").unwrap()]),
            time_window: Some(window("09:00", "17:00", "UTC")),
        };
        assert!(conditions.hold(&ctx()));
        let late = RequestContext {
            now_unix: at(18, 0),
            ..ctx()
        };
        assert!(!conditions.hold(&late));
        let elsewhere = RequestContext {
            client_ip: Some(ip("198.51.100.1")),
            ..ctx()
        };
        assert!(!conditions.hold(&elsewhere));
    }

    #[test]
    fn unknown_condition_keys_are_refused_rather_than_ignored() {
        assert!(serde_json::from_str::<Conditions>(r#"{"require_mfa":true}"#).is_err());
        assert!(
            serde_json::from_str::<Conditions>(r#"{"ip_allowlist":["10.0.0.0/8"],"x":1}"#).is_err()
        );
        let empty: Conditions = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert!(serde_json::from_str::<Conditions>(r#"{"ip_allowlist":["10.1.2.3/8"]}"#).is_err());
    }

    // --- evaluation -----------------------------------------------------------------------

    #[test]
    fn nothing_is_allowed_without_a_policy() {
        assert_eq!(
            evaluate(&[], &path("db/x"), Permission::Read, &ctx()),
            Decision::Deny { policy: None }
        );
    }

    #[test]
    fn a_matching_allow_grants_only_the_permissions_it_lists() {
        let policies = [allow(1, "db/*", &[Permission::Read, Permission::Write])];
        let decide = |p: &str, permission| evaluate(&policies, &path(p), permission, &ctx());
        assert_eq!(
            decide("db/x", Permission::Read),
            Decision::Allow { policy: id(1) }
        );
        assert_eq!(
            decide("db/x", Permission::Write),
            Decision::Allow { policy: id(1) }
        );
        assert_eq!(
            decide("db/x", Permission::Delete),
            Decision::Deny { policy: None }
        );
        assert_eq!(
            decide("db/x/y", Permission::Read),
            Decision::Deny { policy: None }
        );
        assert_eq!(
            decide("DB/x", Permission::Read),
            Decision::Deny { policy: None }
        );
        assert!(decide("db/x", Permission::Read).is_allowed());
        assert!(!decide("db/x", Permission::Share).is_allowed());
    }

    #[test]
    fn a_deny_beats_every_allow_whatever_the_priorities() {
        let mut favoured = allow(1, "**", &Permission::ALL);
        favoured.priority = i32::MAX;
        let mut lowly = deny(2, "db/secret", &[Permission::Read]);
        lowly.priority = i32::MIN;
        let policies = [favoured, lowly];
        assert_eq!(
            evaluate(&policies, &path("db/secret"), Permission::Read, &ctx()),
            Decision::Deny {
                policy: Some(id(2))
            }
        );
        // The deny says nothing about other permissions or paths.
        assert_eq!(
            evaluate(&policies, &path("db/secret"), Permission::Write, &ctx()),
            Decision::Allow { policy: id(1) }
        );
        assert_eq!(
            evaluate(&policies, &path("db/other"), Permission::Read, &ctx()),
            Decision::Allow { policy: id(1) }
        );
    }

    #[test]
    fn the_highest_priority_allow_is_reported_and_ties_go_to_the_smallest_id() {
        let mut low = allow(1, "**", &[Permission::Read]);
        low.priority = 1;
        let mut high_b = allow(9, "db/*", &[Permission::Read]);
        high_b.priority = 5;
        let mut high_a = allow(3, "db/**", &[Permission::Read]);
        high_a.priority = 5;
        for policies in [
            vec![low.clone(), high_b.clone(), high_a.clone()],
            vec![high_a.clone(), high_b.clone(), low.clone()],
            vec![high_b.clone(), low.clone(), high_a.clone()],
        ] {
            assert_eq!(
                evaluate(&policies, &path("db/x"), Permission::Read, &ctx()),
                Decision::Allow { policy: id(3) }
            );
        }
    }

    #[test]
    fn the_reported_deny_is_chosen_by_the_same_ranking() {
        let mut first = deny(7, "**", &[Permission::Read]);
        first.priority = 2;
        let mut second = deny(4, "db/*", &[Permission::Read]);
        second.priority = 2;
        let third = deny(1, "db/x", &[Permission::Read]);
        let policies = [first, second, third, allow(0, "**", &[Permission::Read])];
        assert_eq!(
            evaluate(&policies, &path("db/x"), Permission::Read, &ctx()),
            Decision::Deny {
                policy: Some(id(4))
            }
        );
    }

    #[test]
    fn an_expired_policy_no_longer_applies_from_its_expiry_on() {
        let mut grant = allow(1, "db/*", &[Permission::Read]);
        grant.expires_at = Some(ctx().now_unix + 1);
        let decide = |policies: &[Policy], now_unix| {
            let ctx = RequestContext { now_unix, ..ctx() };
            evaluate(policies, &path("db/x"), Permission::Read, &ctx)
        };
        let now = ctx().now_unix;
        assert!(decide(std::slice::from_ref(&grant), now).is_allowed());
        assert_eq!(
            decide(std::slice::from_ref(&grant), now + 1),
            Decision::Deny { policy: None }
        );
        assert_eq!(
            decide(std::slice::from_ref(&grant), now + 2),
            Decision::Deny { policy: None }
        );
        // An expired deny stops denying too.
        let mut block = deny(2, "db/*", &[Permission::Read]);
        block.expires_at = Some(now);
        let open = allow(3, "**", &[Permission::Read]);
        assert_eq!(
            decide(&[block.clone(), open.clone()], now),
            Decision::Allow { policy: id(3) }
        );
        assert_eq!(
            decide(&[block, open], now - 1),
            Decision::Deny {
                policy: Some(id(2))
            }
        );
    }

    #[test]
    fn an_allow_whose_ip_allowlist_fails_grants_nothing() {
        let mut grant = allow(1, "db/*", &[Permission::Read]);
        grant.conditions.ip_allowlist = Some(vec![Cidr::parse("2001:db8::/32").unwrap()]);
        let policies = [grant];
        let from = |client_ip| RequestContext { client_ip, ..ctx() };
        let decide = |ctx| evaluate(&policies, &path("db/x"), Permission::Read, &ctx);
        assert!(decide(from(Some(ip("2001:db8::5")))).is_allowed());
        assert_eq!(
            decide(from(Some(ip("192.0.2.10")))),
            Decision::Deny { policy: None }
        );
        assert_eq!(decide(from(None)), Decision::Deny { policy: None });
    }

    #[test]
    fn an_allow_outside_its_time_window_grants_nothing() {
        let mut grant = allow(1, "db/*", &[Permission::Read]);
        grant.conditions.time_window = Some(window("22:00", "06:00", "+01:00"));
        let policies = [grant];
        let decide = |now_unix| {
            let ctx = RequestContext { now_unix, ..ctx() };
            evaluate(&policies, &path("db/x"), Permission::Read, &ctx)
        };
        // 22:00-06:00 at +01:00 is 21:00-05:00 UTC.
        assert!(decide(at(21, 0)).is_allowed());
        assert!(decide(at(4, 59)).is_allowed());
        assert!(!decide(at(5, 0)).is_allowed());
        assert!(!decide(at(12, 0)).is_allowed());
    }

    #[test]
    fn a_deny_applies_only_where_its_own_conditions_hold() {
        let mut block = deny(1, "**", &[Permission::Read]);
        block.conditions.ip_allowlist = Some(vec![Cidr::parse("198.51.100.0/24").unwrap()]);
        let policies = [block, allow(2, "**", &[Permission::Read])];
        let from = |client: &str| RequestContext {
            client_ip: Some(ip(client)),
            ..ctx()
        };
        assert_eq!(
            evaluate(
                &policies,
                &path("x"),
                Permission::Read,
                &from("198.51.100.7")
            ),
            Decision::Deny {
                policy: Some(id(1))
            }
        );
        assert_eq!(
            evaluate(&policies, &path("x"), Permission::Read, &from("192.0.2.1")),
            Decision::Allow { policy: id(2) }
        );
    }

    /// Property tests of SECURITY.md case 8: no path trick widens access. The strategies for
    /// paths and patterns are the matcher's own (`pattern::tests::properties`).
    mod properties {
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        use super::*;
        use crate::policy::pattern::tests::properties::{path, pattern, pattern_token, segment};

        /// A pattern and a path built to match it: each `*` filled with one segment, each `**`
        /// with zero to three.
        fn pattern_with_matching_path() -> impl Strategy<Value = (PathPattern, SecretPath)> {
            vec((pattern_token(), vec(segment(), 0..4)), 1..6).prop_filter_map(
                "a pattern of only `**` filled with nothing makes an empty path",
                |tokens| {
                    let mut glob = Vec::new();
                    let mut parts = Vec::new();
                    for (token, fill) in tokens {
                        match token.as_str() {
                            "*" => parts.push(fill.first().cloned().unwrap_or_else(|| "z".into())),
                            "**" => parts.extend(fill),
                            _ => parts.push(token.clone()),
                        }
                        glob.push(token);
                    }
                    let glob = PathPattern::parse(&glob.join("/")).ok()?;
                    let path = SecretPath::parse(&parts.join("/")).ok()?;
                    Some((glob, path))
                },
            )
        }

        fn permission() -> impl Strategy<Value = Permission> {
            select(Permission::ALL.to_vec())
        }

        fn context() -> impl Strategy<Value = RequestContext> {
            (any::<i64>(), proptest::option::of(any::<IpAddr>())).prop_map(
                |(now_unix, client_ip)| RequestContext {
                    now_unix,
                    client_ip,
                },
            )
        }

        fn flip_case(text: &str) -> String {
            text.chars()
                .map(|c| {
                    if c.is_ascii_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        }

        fn policy(
            n: u128,
            glob: PathPattern,
            permissions: Vec<Permission>,
            effect: Effect,
            priority: i32,
        ) -> Policy {
            Policy {
                id: PolicyId::from_uuid(Uuid::from_u128(n)),
                pattern: glob,
                permissions,
                effect,
                priority,
                conditions: Conditions::default(),
                expires_at: None,
            }
        }

        proptest! {
            // (3) Deny beats allow, on every path the deny's pattern matches.
            #[test]
            fn a_deny_for_a_pattern_beats_any_allow_on_every_path_it_matches(
                (deny_glob, matching) in pattern_with_matching_path(),
                other in path(),
                wanted in permission(),
                deny_priority in any::<i32>(),
                allows in vec((pattern(), vec(permission(), 0..5), any::<i32>()), 0..6),
                position in any::<prop::sample::Index>(),
            ) {
                let mut policies: Vec<Policy> = allows
                    .into_iter()
                    .enumerate()
                    .map(|(i, (glob, permissions, priority))| {
                        policy(i as u128 + 10, glob, permissions, Effect::Allow, priority)
                    })
                    .collect();
                // An allow of everything, at the highest priority.
                policies.push(policy(1, pattern_of("**"), Permission::ALL.to_vec(), Effect::Allow, i32::MAX));
                let deny = policy(2, deny_glob.clone(), vec![wanted], Effect::Deny, deny_priority);
                policies.insert(position.index(policies.len() + 1), deny);
                let ctx = RequestContext { now_unix: 0, client_ip: None };
                let deny_id = PolicyId::from_uuid(Uuid::from_u128(2));

                prop_assert!(deny_glob.matches(&matching));
                prop_assert_eq!(
                    evaluate(&policies, &matching, wanted, &ctx),
                    Decision::Deny { policy: Some(deny_id) }
                );
                let decision = evaluate(&policies, &other, wanted, &ctx);
                if deny_glob.matches(&other) {
                    prop_assert_eq!(decision, Decision::Deny { policy: Some(deny_id) });
                } else {
                    prop_assert!(decision.is_allowed());
                }
            }

            // (5) A pattern without wildcards matches exactly one path: its own text.
            #[test]
            fn a_pattern_without_wildcards_matches_only_itself(
                parts in vec(segment(), 1..6),
                other in path(),
                wanted in permission(),
                ctx in context(),
            ) {
                let text = parts.join("/");
                let glob = PathPattern::parse(&text).unwrap();
                prop_assert!(!glob.has_wildcards());
                prop_assert!(glob.matches(&SecretPath::parse(&text).unwrap()));
                prop_assert_eq!(glob.matches(&other), other.as_str() == text);
                let flipped = flip_case(&text);
                if flipped != text {
                    let flipped = SecretPath::parse(&flipped).unwrap();
                    prop_assert!(!glob.matches(&flipped));
                    let grant = policy(1, glob.clone(), Permission::ALL.to_vec(), Effect::Allow, 0);
                    prop_assert_eq!(
                        evaluate(&[grant], &flipped, wanted, &ctx),
                        Decision::Deny { policy: None }
                    );
                }
            }

            // (6) Default deny.
            #[test]
            fn evaluation_with_no_policies_denies_with_no_policy_named(
                target in path(),
                wanted in permission(),
                ctx in context(),
            ) {
                prop_assert_eq!(evaluate(&[], &target, wanted, &ctx), Decision::Deny { policy: None });
            }

            // Only a policy that applies can be the one a decision names, and an allow is never
            // reported while an applicable deny exists.
            #[test]
            fn a_decision_names_an_applicable_policy_of_its_own_effect(
                specs in vec((pattern(), vec(permission(), 0..5), any::<bool>(), -3i32..3), 0..8),
                target in path(),
                wanted in permission(),
            ) {
                let policies: Vec<Policy> = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (glob, permissions, denies, priority))| {
                        let effect = if denies { Effect::Deny } else { Effect::Allow };
                        policy(i as u128, glob, permissions, effect, priority)
                    })
                    .collect();
                let ctx = RequestContext { now_unix: 0, client_ip: None };
                let applicable: Vec<&Policy> =
                    policies.iter().filter(|p| p.applies(&target, wanted, &ctx)).collect();
                let any_deny = applicable.iter().any(|p| p.effect == Effect::Deny);
                match evaluate(&policies, &target, wanted, &ctx) {
                    Decision::Allow { policy: chosen } => {
                        prop_assert!(!any_deny);
                        let chosen = applicable.iter().find(|p| p.id == chosen);
                        prop_assert!(chosen.is_some_and(|p| p.effect == Effect::Allow));
                        let best = applicable.iter().map(|p| p.priority).max();
                        prop_assert_eq!(chosen.map(|p| p.priority), best);
                    }
                    Decision::Deny { policy: Some(chosen) } => {
                        let chosen = applicable.iter().find(|p| p.id == chosen);
                        prop_assert!(chosen.is_some_and(|p| p.effect == Effect::Deny));
                    }
                    Decision::Deny { policy: None } => prop_assert!(applicable.is_empty()),
                }
            }
        }

        fn pattern_of(text: &str) -> PathPattern {
            PathPattern::parse(text).unwrap()
        }
    }
}
