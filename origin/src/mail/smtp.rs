//! The SMTP client: lettre's async transport on tokio, and what its failures mean to the
//! outbox (try again later, or never).
//!
//! The URL follows lettre's rules: `smtp://host:port` is plain SMTP (no TLS; for a relay on
//! localhost), `smtp://host:port?tls=required` upgrades with STARTTLS and refuses to go on
//! without it, `?tls=opportunistic` upgrades when offered, and `smtps://host:port` is TLS from
//! the first byte. `user:password@` in the URL authenticates. TLS is native-tls (OpenSSL).
//!
//! No connection pool: each message opens its own connection, so a relay that restarted
//! never leaves a dead pooled connection to fail the next message.

use std::time::Duration;

use lettre::message::Message;
use lettre::transport::smtp::response::{Category, Severity};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// Longest one message's SMTP exchange may take, connect to final reply: a server that hangs
/// must not stall the loop (nor hold the row's lock) for long.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The configured relay.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

/// The transport's `Debug` would print the relay's credentials.
impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp").finish_non_exhaustive()
    }
}

/// `OXVAULT_SMTP_URL` is not a URL lettre can use.
#[derive(Debug, thiserror::Error)]
#[error("OXVAULT_SMTP_URL is not a usable SMTP URL (smtp://host:port, smtps://..., ?tls=required)")]
pub struct InvalidSmtpUrl;

impl Smtp {
    /// A transport for `url`. The error says nothing of the URL itself: it may hold a password.
    pub fn from_url(url: &SecretString) -> Result<Self, InvalidSmtpUrl> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|_| InvalidSmtpUrl)?
            // Per network operation; the whole exchange is bounded by SEND_TIMEOUT as well.
            .timeout(Some(SEND_TIMEOUT))
            .build();
        Ok(Self { transport })
    }

    /// Hands `message` to the relay. `Ok` means the relay accepted it (250 after DATA).
    pub async fn send(&self, message: Message) -> Result<(), SendFailure> {
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(SendFailure::from_lettre(&err)),
            Err(_) => Err(SendFailure::retry("timed out")),
        }
    }
}

/// Why a send failed, in words fit for `last_error` and the log: a reply code and a class,
/// never the server's reply text (it may echo the recipient's address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Retrying cannot help: the relay refused this mailbox or message for good.
    pub permanent: bool,
    pub reason: String,
}

impl SendFailure {
    fn retry(reason: impl Into<String>) -> Self {
        Self {
            permanent: false,
            reason: reason.into(),
        }
    }

    fn from_lettre(err: &lettre::transport::smtp::Error) -> Self {
        if let Some(code) = err.status() {
            let text = code.to_string();
            return Self::from_reply(code.severity, code.category, &text);
        }
        if err.is_timeout() {
            Self::retry("timed out")
        } else if err.is_tls() {
            Self::retry("TLS failed")
        } else if err.is_response() {
            Self::retry("unreadable reply")
        } else {
            // Refused or dropped connections, name resolution, a protocol error on our side.
            Self::retry("connection failed")
        }
    }

    /// A negative reply. Only 55x is permanent: those answers are about the mailbox or the
    /// message (550 no such user, 552 too big, 553 bad name, 554 refused). Other 5xx replies
    /// (500-504 syntax, 530/535 authentication) are about our setup, which an operator can
    /// fix, so the message waits for that; 4xx replies ask for a retry by definition.
    fn from_reply(severity: Severity, category: Category, code: &str) -> Self {
        let permanent =
            severity == Severity::PermanentNegativeCompletion && category == Category::MailSystem;
        if permanent {
            Self {
                permanent,
                reason: format!("refused permanently ({code})"),
            }
        } else if severity == Severity::PermanentNegativeCompletion {
            Self::retry(format!("refused ({code}); check the relay settings"))
        } else {
            Self::retry(format!("refused temporarily ({code})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::transport::smtp::response::{Code, Detail};

    fn reply(severity: Severity, category: Category, detail: Detail) -> SendFailure {
        let code = Code::new(severity, category, detail);
        SendFailure::from_reply(severity, category, &code.to_string())
    }

    #[test]
    fn a_4xx_reply_is_retried() {
        let failure = reply(
            Severity::TransientNegativeCompletion,
            Category::MailSystem,
            Detail::One,
        );
        assert!(!failure.permanent);
        assert_eq!(failure.reason, "refused temporarily (451)");
        let failure = reply(
            Severity::TransientNegativeCompletion,
            Category::Connections,
            Detail::One,
        );
        assert!(!failure.permanent);
        assert_eq!(failure.reason, "refused temporarily (421)");
    }

    #[test]
    fn a_55x_reply_is_permanent() {
        for detail in [Detail::Zero, Detail::Two, Detail::Three, Detail::Four] {
            let failure = reply(
                Severity::PermanentNegativeCompletion,
                Category::MailSystem,
                detail,
            );
            assert!(failure.permanent, "{failure:?}");
            assert!(failure.reason.starts_with("refused permanently (55"));
        }
    }

    #[test]
    fn an_authentication_or_syntax_refusal_waits_for_the_operator() {
        let auth = reply(
            Severity::PermanentNegativeCompletion,
            Category::Unspecified3,
            Detail::Five,
        );
        assert!(!auth.permanent);
        assert_eq!(auth.reason, "refused (535); check the relay settings");
        let syntax = reply(
            Severity::PermanentNegativeCompletion,
            Category::Syntax,
            Detail::Zero,
        );
        assert!(!syntax.permanent);
    }

    #[test]
    fn a_url_lettre_cannot_use_is_refused_without_echoing_it() {
        let err =
            Smtp::from_url(&SecretString::from("http://user:hunter2@mail.example")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(Smtp::from_url(&SecretString::from("not a url")).is_err());
    }

    #[test]
    fn plain_and_tls_smtp_urls_are_accepted() {
        // Building a transport opens no connection, so no server is needed.
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://user:pass@mail.example:587?tls=required",
            "smtps://mail.example",
        ] {
            let smtp = Smtp::from_url(&SecretString::from(url));
            assert!(smtp.is_ok(), "{url}");
            assert!(!format!("{:?}", smtp.unwrap()).contains("pass"));
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried() {
        // A port nothing listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let smtp = Smtp::from_url(&SecretString::from(format!("smtp://127.0.0.1:{port}"))).unwrap();
        let message = Message::builder()
            .from("a@example.com".parse().unwrap())
            .to("b@example.com".parse().unwrap())
            .subject("x")
            .body(String::from("x"))
            .unwrap();
        let failure = smtp.send(message).await.unwrap_err();
        assert_eq!(failure, SendFailure::retry("connection failed"));
    }
}
