//! Turning an outbox row into an RFC 5322 message, with lettre's typed headers.
//!
//! Addresses are parsed, never pasted: a recipient must parse as a bare address (no display
//! name, no CR/LF), so a stored value such as `a@b.example\r\nBcc: c@d.example` cannot add a
//! header or a hidden recipient; it fails to parse and the message is set aside. The subject
//! loses its control characters before lettre encodes it, for the same reason.

use lettre::Address;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use uuid::Uuid;

use crate::store::outbox::QueuedMail;

/// Longest subject sent, in characters; longer ones are cut (they are ours, so this is a
/// guard, not a rule users meet).
const MAX_SUBJECT_CHARS: usize = 200;

/// Why a row cannot become a message. Every case is permanent: retrying changes nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("the recipient address does not parse")]
    Recipient,
    #[error("the message has no body")]
    NoBody,
    #[error("lettre refused the message")]
    Message,
}

/// The sender configured in `OXVAULT_MAIL_FROM` (e.g. `oxvault <no-reply@vault.example>`).
pub fn parse_sender(from: &str) -> Result<Mailbox, lettre::address::AddressError> {
    from.trim().parse()
}

/// The message for `mail`, from `from`. Its Message-ID is derived from the outbox id, so the
/// rare duplicate (a crash between the server's acceptance and our mark) carries the same id
/// and receivers can tell it is the same message.
pub fn build(from: &Mailbox, mail: &QueuedMail) -> Result<Message, BuildError> {
    let to: Address = mail
        .recipient
        .trim()
        .parse()
        .map_err(|_| BuildError::Recipient)?;
    let body = mail.body_text.clone().ok_or(BuildError::NoBody)?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(clean_subject(&mail.subject))
        .message_id(Some(message_id(mail.id, from)))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|_| BuildError::Message)
}

/// `<outbox-id@sender-domain>`.
fn message_id(id: Uuid, from: &Mailbox) -> String {
    format!("<{id}@{}>", from.email.domain())
}

/// The subject on one line: control characters (CR, LF, tabs...) become spaces, runs of
/// whitespace collapse, and it is cut at [`MAX_SUBJECT_CHARS`].
fn clean_subject(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

/// What the log may say about a recipient: the domain only (the full address is personal
/// data), and only when it looks like one, so a malformed address cannot smuggle text in.
pub fn recipient_domain(recipient: &str) -> &str {
    match recipient.trim().rsplit_once('@') {
        Some((_, domain))
            if !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')) =>
        {
            domain
        }
        _ => "(invalid)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(recipient: &str, subject: &str) -> QueuedMail {
        QueuedMail {
            id: Uuid::from_u128(0x1234),
            kind: "invite".into(),
            recipient: recipient.into(),
            subject: subject.into(),
            body_text: Some("Hello.\nSign up at https://vault.example.com\n".into()),
            attempts: 0,
        }
    }

    fn sender() -> Mailbox {
        parse_sender("oxvault <no-reply@vault.example.com>").unwrap()
    }

    /// The header block of a formatted message, as text.
    fn headers(message: &Message) -> String {
        let text = String::from_utf8(message.formatted()).unwrap();
        text.split("\r\n\r\n").next().unwrap().to_owned()
    }

    /// The header names of a header block, unfolded.
    fn header_names(headers: &str) -> Vec<String> {
        headers
            .split("\r\n")
            .filter(|line| !line.starts_with([' ', '\t']))
            .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_lowercase()))
            .collect()
    }

    #[test]
    fn a_message_carries_from_to_subject_and_a_message_id_made_from_the_outbox_id() {
        let message = build(
            &sender(),
            &queued("bob@example.org", "You're invited to Acme on oxvault"),
        )
        .unwrap();
        let headers = headers(&message);
        assert!(
            headers.contains("From: oxvault <no-reply@vault.example.com>"),
            "{headers}"
        );
        assert!(headers.contains("To: bob@example.org"), "{headers}");
        assert!(
            headers.contains("Subject: You're invited to Acme on oxvault"),
            "{headers}"
        );
        assert!(
            headers.contains(&format!(
                "Message-ID: <{}@vault.example.com>",
                Uuid::from_u128(0x1234)
            )),
            "{headers}"
        );
        assert!(headers.contains("Content-Type: text/plain; charset=utf-8"));
        let envelope = message.envelope();
        assert_eq!(envelope.to().len(), 1);
        assert_eq!(envelope.to()[0].to_string(), "bob@example.org");
        assert_eq!(
            envelope.from().map(ToString::to_string).as_deref(),
            Some("no-reply@vault.example.com")
        );
    }

    #[test]
    fn the_body_is_sent_with_crlf_line_ends() {
        let message = build(&sender(), &queued("bob@example.org", "Hi")).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Hello.\r\nSign up at https://vault.example.com\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_recipient_with_a_line_break_does_not_parse_so_it_cannot_add_a_header() {
        for recipient in [
            "bob@example.org\r\nBcc: eve@evil.example",
            "bob@example.org\nBcc: eve@evil.example",
            "Bob <bob@example.org>, eve@evil.example",
            "not an address",
            "",
        ] {
            assert_eq!(
                build(&sender(), &queued(recipient, "Hi")).unwrap_err(),
                BuildError::Recipient,
                "{recipient:?}"
            );
        }
    }

    #[test]
    fn a_subject_with_line_breaks_stays_one_header() {
        let message = build(
            &sender(),
            &queued(
                "bob@example.org",
                "Hello\r\nBcc: eve@evil.example\nX-Evil: 1",
            ),
        )
        .unwrap();
        let headers = headers(&message);
        let names = header_names(&headers);
        assert!(!names.contains(&"bcc".to_owned()), "{headers}");
        assert!(!names.contains(&"x-evil".to_owned()), "{headers}");
        assert_eq!(
            names.iter().filter(|name| *name == "subject").count(),
            1,
            "{headers}"
        );
        assert_eq!(message.envelope().to().len(), 1, "no extra recipient");
        assert_eq!(
            clean_subject("Hello\r\nBcc: eve@evil.example"),
            "Hello Bcc: eve@evil.example"
        );
    }

    #[test]
    fn a_long_subject_is_cut() {
        assert_eq!(clean_subject(&"x".repeat(500)).len(), MAX_SUBJECT_CHARS);
    }

    #[test]
    fn a_row_without_a_body_is_refused() {
        let mut mail = queued("bob@example.org", "Hi");
        mail.body_text = None;
        assert_eq!(build(&sender(), &mail).unwrap_err(), BuildError::NoBody);
    }

    #[test]
    fn the_log_sees_only_the_recipients_domain() {
        assert_eq!(recipient_domain("bob@example.org"), "example.org");
        assert_eq!(recipient_domain("garbage"), "(invalid)");
        assert_eq!(recipient_domain("a@b.example\r\nBcc: x"), "(invalid)");
    }
}
