//! Invitations to join an org, and their redemption.
//!
//! An invitation is a single-use token (`oiv_` + 256 random bits) mailed to the invited
//! address; only its SHA-256 is stored. It is redeemed by an explicit accept from a signed-in
//! user whose address is the invited one: holding the token proves the mailbox, being signed
//! in proves the account, and the address is marked verified. Signing up never joins another
//! org, so nobody can squat an invitation for someone else's address, and guessing a pending
//! invitee's address gives nothing.
//!
//! Any number of orgs may invite one address at a time (an org that invites first cannot
//! lock a person out of another); re-inviting replaces the org's own invitation and kills its
//! old token. Accepting moves the user into the inviting org; the org they leave must hold
//! nothing else (no other member, vault or agent), so no data is stranded. Every token the
//! user held (sessions, personal API keys) belonged to the old org and ends; the answer is a
//! fresh session in the new one.
//!
//! The mail is queued in the outbox in the invitation's transaction (`crate::mail` delivers
//! it), within a volume limit: three mails an hour to one address from all orgs together, a
//! hundred a day from one org, so re-inviting cannot flood anyone. The org name the mail
//! repeats is chosen by the inviters: it is kept on one line and short. Audit: `member.invite` (the role; the invited address is the event's resource id and
//! goes nowhere else on the record) and `member.join` in the joined org.

use chrono::{DateTime, Utc};
use oxvault_core::auth::{
    AcceptInvitationRequest, InviteMemberRequest, InviteMemberResponse, TokenResponse,
};
use oxvault_core::claims::Role;
use oxvault_core::email::Email;
use oxvault_core::ids::OrgId;
use sqlx::PgPool;

use super::ServiceError;
use super::audit::{Actor, AuditLog, Event};
use super::auth::{AuthService, SessionKind, random_token, token_hash};
use super::org::ONLY_OWNERS_MANAGE_OWNERS;
use super::principal::Principal;
use crate::store::invites::{self, NewInvite};
use crate::store::outbox::{self, MailQuota, NewMail};
use crate::store::{self, StoreError, sessions, users};

/// How long an invitation stays open.
const INVITE_TTL: chrono::Duration = chrono::Duration::days(7);
/// Prefix of invitation tokens, so leaked ones are recognisable by secret scanners.
const INVITE_PREFIX: &str = "oiv_";
/// Longest token looked up (a real one is 47 characters).
const MAX_TOKEN_LEN: usize = 128;
/// Longest org name an invitation mail repeats: the name is chosen by the inviters.
const MAX_ORG_NAME_IN_MAIL: usize = 60;
/// The one answer to a token that redeems nothing: unknown, spent, expired, replaced, or
/// meant for another address all look alike.
const NO_INVITATION: &str = "invitation";

/// Invitations; cheap to clone.
#[derive(Debug, Clone)]
pub struct InvitationService {
    pool: PgPool,
    audit: AuditLog,
    /// Opens the session in the joined org.
    auth: AuthService,
    /// Where people reach oxvault (`Config::public_url`): invitation mails point there.
    public_url: String,
}

impl InvitationService {
    pub fn new(pool: PgPool, audit: AuditLog, auth: AuthService, public_url: String) -> Self {
        Self {
            pool,
            audit,
            auth,
            public_url,
        }
    }

    /// Records an invitation and queues the mail that carries its token. Re-inviting replaces
    /// the org's own open invitation (the old token dies); a current member is refused.
    pub async fn invite(
        &self,
        principal: &Principal,
        request: InviteMemberRequest,
    ) -> Result<InviteMemberResponse, ServiceError> {
        let caller = principal.require_manager()?;
        let role = request.role.unwrap_or(Role::Member);
        if role == Role::Owner && principal.role != Some(Role::Owner) {
            return Err(ServiceError::Forbidden(ONLY_OWNERS_MANAGE_OWNERS));
        }
        let email = Email::parse(&request.email)
            .map_err(|err| ServiceError::Invalid(format!("email: {err}")))?;
        let org_id = *principal.org.as_uuid();
        let token = random_token(INVITE_PREFIX)?;

        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let member = users::find_by_email(&mut tx, email.as_str())
            .await?
            .is_some_and(|user| user.org_id == org_id);
        if member {
            return Err(ServiceError::Conflict(
                "this address is already a member of the organization".into(),
            ));
        }
        let expires_at = Utc::now() + INVITE_TTL;
        invites::replace_invite(
            &mut tx,
            &NewInvite {
                org_id,
                email: email.as_str(),
                role,
                invited_by: *caller.as_uuid(),
                expires_at,
                token_hash: &token_hash(&token),
            },
        )
        .await?;
        let org_name = users::org_name(&mut tx, org_id).await?;
        let mail = invitation_mail(&Invitation {
            org: org_name.as_deref(),
            role,
            email: email.as_str(),
            token: &token,
            public_url: &self.public_url,
            expires_at,
        });
        drop(token);
        let queued = outbox::enqueue_within(
            &mut tx,
            &NewMail {
                org_id: Some(org_id),
                kind: "invite",
                recipient: email.as_str(),
                subject: &mail.subject,
                body_text: &mail.body,
                share_fingerprint: None,
            },
            MailQuota::STANDARD,
        )
        .await?;
        if let Err(retry_after_secs) = queued {
            return Err(ServiceError::TooManyAttempts { retry_after_secs });
        }
        let event = Event::by(principal, "member.invite")
            .on("invite", email.as_str())
            .detail("role", role.as_str());
        self.audit.commit(tx, event).await?;
        // The address is personal data: the log names the org, the inviter and the role only.
        tracing::info!(org_id = %org_id, by = %caller, role = %role, "invitation recorded");
        Ok(InviteMemberResponse {
            message: "invitation sent; the invitee signs in as this address and accepts it \
                      with the token in the mail"
                .into(),
            email: email.to_string(),
        })
    }

    /// Redeems an invitation for the signed-in user whose address it was sent to: the user
    /// moves into the inviting org with the invited role, the address is marked verified,
    /// and every earlier session and personal key of the user ends. Answers a new session.
    pub async fn accept(
        &self,
        principal: &Principal,
        request: AcceptInvitationRequest,
    ) -> Result<TokenResponse, ServiceError> {
        let user_id = *principal.require_user()?.as_uuid();
        let token = request.token.expose().trim();
        if !token.starts_with(INVITE_PREFIX) || token.len() > MAX_TOKEN_LEN {
            return Err(ServiceError::NotFound(NO_INVITATION));
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let user = users::find_in_org(&mut tx, *principal.org.as_uuid(), user_id)
            .await?
            .ok_or(ServiceError::NotFound(NO_INVITATION))?;
        // Redeemed inside the transaction: any refusal below rolls it back, and a token for
        // another address stays open for its owner.
        let invite = invites::redeem(&mut tx, &token_hash(token), user.id)
            .await?
            .filter(|invite| invite.email == user.email)
            .ok_or(ServiceError::NotFound(NO_INVITATION))?;
        if invite.org_id == user.org_id {
            return Err(ServiceError::Conflict(
                "you are already a member of this organization".into(),
            ));
        }
        let left = users::holdings(&mut tx, user.org_id, user.id).await?;
        if left.other_members > 0 || left.vaults > 0 || left.agents > 0 {
            return Err(ServiceError::Conflict(
                "your current organization still has other members, vaults or agents; \
                 an account belongs to one organization, so leave or empty it first"
                    .into(),
            ));
        }
        let role = invite.role;
        let moved = users::move_to_org(&mut tx, user.id, invite.org_id, role).await?;
        sessions::revoke_other_sessions(&mut tx, user.id, None).await?;
        store::api_keys::revoke_all_of_user(&mut tx, user.id).await?;
        let session = self
            .auth
            .open_session(&mut tx, &moved, SessionKind::Login)
            .await?;
        let joined = OrgId::from_uuid(invite.org_id);
        let event = Event::new(
            "member.join",
            Some(joined),
            Actor::of(principal),
            principal.client_ip,
        )
        .on("user", user.id)
        .detail("role", role.as_str())
        .detail("invitation", invite.id.to_string());
        self.audit.commit(tx, event).await?;
        tracing::info!(org_id = %invite.org_id, user_id = %user.id, "invitation accepted");
        Ok(session)
    }
}

/// What an invitation mail says.
#[derive(Debug)]
struct Invitation<'a> {
    /// The org's name, when it has one (chosen by its members: untrusted text).
    org: Option<&'a str>,
    role: Role,
    email: &'a str,
    token: &'a str,
    public_url: &'a str,
    expires_at: DateTime<Utc>,
}

/// The words of an invitation mail.
#[derive(Debug)]
struct InvitationMail {
    subject: String,
    body: String,
}

/// The invitation mail. The org name is kept on one line, so it cannot add headers or fake
/// a paragraph of instructions.
fn invitation_mail(invitation: &Invitation<'_>) -> InvitationMail {
    let org = invitation
        .org
        .map(|name| {
            let name: String = name
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let name = name.trim();
            if name.chars().count() > MAX_ORG_NAME_IN_MAIL {
                name.chars().take(MAX_ORG_NAME_IN_MAIL).collect::<String>() + "…"
            } else {
                name.to_owned()
            }
        })
        .filter(|name| !name.trim().is_empty());
    let (subject, joining) = match &org {
        Some(name) => (
            format!("You're invited to {} on oxvault", name.trim()),
            format!("the organization \"{}\"", name.trim()),
        ),
        None => (
            "You're invited to an organization on oxvault".to_owned(),
            "an organization".to_owned(),
        ),
    };
    let Invitation {
        role,
        email,
        token,
        public_url,
        ..
    } = invitation;
    let expires = invitation.expires_at.format("%Y-%m-%d %H:%M UTC");
    let body = format!(
        "You have been invited to join {joining} on oxvault, a secrets vault, as {role}.\n\
         \n\
         To accept, sign in to oxvault as {email} (sign up first if you have no account):\n\
         \n\
         {public_url}\n\
         \n\
         then accept with this invitation token, which works once:\n\
         \n\
         {token}\n\
         \n\
         (POST {public_url}/v1/org/invitations/accept with {{\"token\": \"...\"}}.)\n\
         \n\
         The invitation expires on {expires}. If you did not expect it, ignore this message:\n\
         nothing happens unless you accept.\n"
    );
    InvitationMail { subject, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(org: Option<&str>) -> Invitation<'_> {
        Invitation {
            org,
            role: Role::Admin,
            email: "eve@example.com",
            token: "oiv_TOKEN",
            public_url: "https://vault.example.com",
            expires_at: DateTime::parse_from_rfc3339("2026-12-05T10:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn an_invitation_mail_names_the_org_role_address_token_and_where_to_accept() {
        let mail = invitation_mail(&invitation(Some("Acme's org")));
        assert_eq!(mail.subject, "You're invited to Acme's org on oxvault");
        for expected in [
            "\"Acme's org\"",
            "as admin.",
            "as eve@example.com",
            "\nhttps://vault.example.com\n",
            "\noiv_TOKEN\n",
            "https://vault.example.com/v1/org/invitations/accept",
            "2026-12-05 10:30 UTC",
        ] {
            assert!(
                mail.body.contains(expected),
                "{expected:?} in {}",
                mail.body
            );
        }
    }

    #[test]
    fn an_org_name_with_line_breaks_stays_on_one_line_and_a_blank_one_is_left_out() {
        let mail = invitation_mail(&invitation(Some("Evil\r\nBcc: x@evil.example")));
        assert!(!mail.subject.contains(['\r', '\n']), "{}", mail.subject);
        let mail = invitation_mail(&invitation(Some(" \n ")));
        assert_eq!(mail.subject, "You're invited to an organization on oxvault");
        let mail = invitation_mail(&invitation(None));
        assert!(
            mail.body.contains("join an organization on"),
            "{}",
            mail.body
        );
        let long = "Click https://evil.example to verify your account ".repeat(5);
        let mail = invitation_mail(&invitation(Some(&long)));
        assert!(
            mail.subject.chars().count() <= MAX_ORG_NAME_IN_MAIL + 40,
            "{}",
            mail.subject
        );
    }
}
