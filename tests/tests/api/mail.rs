//! Outgoing mail, end to end: the act (an invitation, a share with an outside address) queues
//! a message in its transaction, and the origin's delivery loop hands it to a real SMTP
//! server (`oxvault_tests::SmtpListener`) on 127.0.0.1, retrying while it refuses.
//!
//! The outbox is read straight from the test's database to see what the loop recorded:
//! attempts, the erased body, a message set aside as undeliverable.

use std::time::{Duration, Instant};

use oxvault_tests::shares::in_an_hour;
use oxvault_tests::{
    Origin, OriginSettings, ReservedPort, SmtpListener, SmtpSettings, TempFailure, TestStack,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

/// Where the invitation mails point (`OXVAULT_PUBLIC_URL`).
const PUBLIC_URL: &str = "https://vault.example.test";
/// Long enough for a delivery on a busy machine; the loop polls every 200 ms.
const DELIVERY: Duration = Duration::from_secs(20);

/// Has an origin send mail to `smtp://127.0.0.1:{port}`, polling every 200 ms and waiting at
/// most one second between attempts.
fn mail_to(settings: &mut OriginSettings, port: u16) {
    for (name, value) in [
        ("OXVAULT_SMTP_URL", format!("smtp://127.0.0.1:{port}")),
        ("OXVAULT_MAIL_RETRY_MAX_SECS", "1".to_owned()),
        ("OXVAULT_MAIL_POLL_MS", "200".to_owned()),
        ("OXVAULT_PUBLIC_URL", PUBLIC_URL.to_owned()),
    ] {
        settings.extra_env.push((name.to_owned(), value));
    }
}

/// A stack whose origin mails to `port` (see [`mail_to`]).
async fn stack_mailing_to(port: u16) -> TestStack {
    TestStack::builder()
        .origin(move |settings| {
            mail_to(settings, port);
        })
        .start()
        .await
}

async fn invite(stack: &TestStack, token: &str, email: &str, role: &str) {
    let (status, body) = stack.invite(token, email, role).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// One outbox row as the delivery loop left it.
#[derive(Debug)]
struct OutboxRow {
    kind: String,
    recipient: String,
    body_text: Option<String>,
    attempts: i32,
    last_error: Option<String>,
    sent: bool,
    failed: bool,
}

async fn outbox(stack: &TestStack) -> Vec<OutboxRow> {
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    sqlx::query(
        "SELECT kind, recipient, body_text, attempts, last_error, \
                sent_at IS NOT NULL AS sent, failed_at IS NOT NULL AS failed \
         FROM mail_outbox ORDER BY created_at",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .into_iter()
    .map(|row| OutboxRow {
        kind: row.get("kind"),
        recipient: row.get("recipient"),
        body_text: row.get("body_text"),
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
        sent: row.get("sent"),
        failed: row.get("failed"),
    })
    .collect()
}

/// Polls the outbox until `done` holds for its rows; panics after `DELIVERY`.
async fn wait_for_outbox(stack: &TestStack, what: &str, done: impl Fn(&[OutboxRow]) -> bool) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let rows = outbox(stack).await;
        if done(&rows) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: outbox is {rows:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_invitation_mails_the_invited_address_once_with_the_org_role_and_sign_up_url() {
    let smtp = SmtpListener::start().await;
    let stack = stack_mailing_to(smtp.port()).await;
    let owner = stack.signup("founder@example.com").await;

    invite(&stack, &owner.access_token, "Newbie@Example.com", "admin").await;

    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["newbie@example.com"]);
    assert_eq!(mail.from, "no-reply@oxvault.local");
    assert_eq!(mail.header("To").as_deref(), Some("newbie@example.com"));
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("You're invited to Test User's org on oxvault")
    );
    let body = mail.body();
    assert!(body.contains("as admin"), "{body}");
    assert!(body.contains("as newbie@example.com"), "{body}");
    assert!(body.contains(&format!("\n{PUBLIC_URL}\n")), "{body}");
    // The mailed token is what joins: the invitee signs up, then accepts with it.
    let newbie = stack.signup("newbie@example.com").await;
    let joined = stack
        .accept_invitation(&newbie, &oxvault_tests::invitation_token_in(&body))
        .await;
    let (status, profile) = stack.me(&joined.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["role"], "admin");

    wait_for_outbox(&stack, "the row is marked sent", |rows| {
        rows.len() == 1 && rows[0].sent
    })
    .await;
    let rows = outbox(&stack).await;
    assert_eq!(rows[0].kind, "invite");
    assert_eq!(rows[0].recipient, "newbie@example.com");
    assert_eq!(rows[0].body_text, None, "a sent body is erased");
    assert_eq!(rows[0].attempts, 0);
    // A few more polls: still exactly one message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1);
    // The log names the message and the domain, never the address.
    assert!(stack.origin_logged("mail sent").await);
    assert!(
        !stack.origin_log().contains("newbie@example.com"),
        "the recipient's address reached the log"
    );
}

#[tokio::test]
async fn mail_waits_in_the_outbox_while_no_smtp_server_answers_and_goes_once_one_does() {
    let reserved = ReservedPort::new();
    let stack = stack_mailing_to(reserved.port()).await;
    let owner = stack.signup("founder@example.com").await;

    invite(&stack, &owner.access_token, "later@example.com", "member").await;

    wait_for_outbox(&stack, "a failed attempt is recorded", |rows| {
        rows.len() == 1 && rows[0].attempts > 0
    })
    .await;
    let rows = outbox(&stack).await;
    assert!(!rows[0].sent);
    assert!(rows[0].body_text.is_some(), "the body waits with the row");
    assert_eq!(rows[0].last_error.as_deref(), Some("connection failed"));

    let smtp = SmtpListener::start_on(reserved).await;
    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["later@example.com"]);
    assert!(mail.body().contains("as member"), "{}", mail.body());
    wait_for_outbox(&stack, "the row is marked sent", |rows| rows[0].sent).await;
    let rows = outbox(&stack).await;
    assert_eq!(rows[0].body_text, None);
    assert_eq!(rows[0].last_error, None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn a_relay_that_answers_451_to_the_first_attempts_gets_the_message_exactly_once() {
    let smtp = SmtpListener::start_with(SmtpSettings {
        refuse_first: 2,
        failure: TempFailure::Data451,
    })
    .await;
    let stack = stack_mailing_to(smtp.port()).await;
    let owner = stack.signup("founder@example.com").await;

    invite(&stack, &owner.access_token, "retry@example.com", "member").await;

    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["retry@example.com"]);
    assert_eq!(smtp.refused(), 2);
    wait_for_outbox(&stack, "the row is marked sent", |rows| {
        rows.len() == 1 && rows[0].sent
    })
    .await;
    let rows = outbox(&stack).await;
    assert_eq!(rows[0].attempts, 2, "two refused attempts were counted");
    assert_eq!(rows[0].body_text, None);
    // Longer than the retry wait: no second copy follows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn a_relay_that_turns_connections_away_with_421_is_retried() {
    let smtp = SmtpListener::start_with(SmtpSettings {
        refuse_first: 1,
        failure: TempFailure::Greeting421,
    })
    .await;
    let stack = stack_mailing_to(smtp.port()).await;
    let owner = stack.signup("founder@example.com").await;

    invite(&stack, &owner.access_token, "busy@example.com", "member").await;

    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["busy@example.com"]);
    assert_eq!(smtp.refused(), 1);
    wait_for_outbox(&stack, "the row is marked sent", |rows| {
        rows.len() == 1 && rows[0].sent
    })
    .await;
    assert_eq!(outbox(&stack).await[0].attempts, 1);
}

#[tokio::test]
async fn a_recipient_that_would_inject_a_header_is_set_aside_and_the_next_message_still_goes() {
    let smtp = SmtpListener::start().await;
    let stack = stack_mailing_to(smtp.port()).await;
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    // Written straight into the outbox: no endpoint lets such an address through, which is
    // the point; the loop must hold even if one got in.
    for (recipient, age_secs) in [
        ("bob@example.org\r\nBcc: eve@evil.example", 60.0),
        ("carol@example.org", 0.0),
    ] {
        sqlx::query(
            "INSERT INTO mail_outbox (id, kind, recipient, subject, body_text, created_at, \
                                      next_attempt_at) \
             VALUES ($1, 'share', $2, 'Hello', 'the body', \
                     now() - make_interval(secs => $3), now() - make_interval(secs => $3))",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(recipient)
        .bind(age_secs)
        .execute(&mut db)
        .await
        .unwrap();
    }

    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["carol@example.org"]);
    assert!(mail.header("Bcc").is_none());
    wait_for_outbox(&stack, "both rows are settled", |rows| {
        rows.len() == 2 && rows[0].failed && rows[1].sent
    })
    .await;
    let rows = outbox(&stack).await;
    assert!(!rows[0].sent);
    assert_eq!(
        rows[0].body_text, None,
        "an undeliverable body is erased too"
    );
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("the recipient address does not parse")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        smtp.received().len(),
        1,
        "nothing went to the injected address"
    );
    let due: bool = sqlx::query_scalar(
        "SELECT next_attempt_at <= now() FROM mail_outbox WHERE failed_at IS NOT NULL",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(!due, "a failed message is never due again");
}

/// Shares a fresh secret holding `value` with `email` (one view, `passphrase`) as a new
/// user; returns the share's answer.
async fn share_by_email(stack: &TestStack, value: &str, passphrase: &str, email: &str) -> Value {
    let (_token, share) = stack
        .share_new_secret(
            "sharer@example.com",
            value,
            json!({
                "recipient_type": "external_email",
                "email": email,
                "expires_at": in_an_hour(),
                "max_access_count": 1,
                "passphrase": passphrase,
            }),
        )
        .await;
    let share_url = share["share_url"].as_str().unwrap();
    let share_id = share["id"].as_str().unwrap();
    assert!(
        share_url.ends_with(&format!("/s/{share_id}")),
        "{share_url}"
    );
    share
}

#[tokio::test]
async fn an_external_email_share_mails_its_link_but_neither_the_passphrase_nor_the_value() {
    const VALUE: &str = "sk-live-mail-test-9f8e7d6c";
    const PASSPHRASE: &str = "orange-kettle-passphrase-42";
    let smtp = SmtpListener::start().await;
    let stack = stack_mailing_to(smtp.port()).await;
    let share = share_by_email(&stack, VALUE, PASSPHRASE, "friend@example.org").await;
    let share_url = share["share_url"].as_str().unwrap();

    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["friend@example.org"]);
    let body = mail.body();
    assert!(body.contains(share_url), "{body}");
    assert!(
        body.contains("Someone shared a secret"),
        "a sender whose address nobody proved is not named: {body}"
    );
    for leaked in [PASSPHRASE, VALUE, "api/key", "sharer@example.com"] {
        assert!(!mail.data.contains(leaked), "{leaked} in {}", mail.data);
        assert!(!body.contains(leaked), "{leaked} in {body}");
    }
    wait_for_outbox(&stack, "the share mail is marked sent", |rows| {
        rows.len() == 1 && rows[0].sent
    })
    .await;
    let rows = outbox(&stack).await;
    assert_eq!(rows[0].kind, "share");
    assert_eq!(rows[0].body_text, None, "the link is erased once sent");
}

/// The share exists (and answers) while its mail cannot go out; the mail follows once a
/// relay listens, once.
#[tokio::test]
async fn a_share_made_while_no_relay_answers_is_mailed_once_one_does() {
    let reserved = ReservedPort::new();
    let stack = stack_mailing_to(reserved.port()).await;
    let share = share_by_email(&stack, "late-value", "late passphrase", "late@example.org").await;
    let share_url = share["share_url"].as_str().unwrap();

    wait_for_outbox(&stack, "a failed attempt is recorded", |rows| {
        rows.len() == 1 && rows[0].attempts > 0
    })
    .await;
    assert!(!outbox(&stack).await[0].sent);

    let smtp = SmtpListener::start_on(reserved).await;
    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["late@example.org"]);
    assert!(mail.body().contains(share_url), "{}", mail.body());
    wait_for_outbox(&stack, "the row is marked sent", |rows| rows[0].sent).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 1);
}

/// Revoking a share whose mail has not gone out yet cancels the mail: the link must not
/// arrive after the sender took it back.
#[tokio::test]
async fn revoking_a_share_cancels_its_unsent_mail() {
    let reserved = ReservedPort::new();
    let stack = stack_mailing_to(reserved.port()).await;
    let share = share_by_email(&stack, "revoked-value", "revoked pass", "gone@example.org").await;
    wait_for_outbox(&stack, "a failed attempt is recorded", |rows| {
        rows.len() == 1 && rows[0].attempts > 0
    })
    .await;

    let owner = stack.login("sharer@example.com").await;
    let id = share["id"].as_str().unwrap();
    let (status, _) = stack
        .call(
            Method::DELETE,
            &format!("/v1/share/{id}"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let rows = outbox(&stack).await;
    assert!(!rows[0].sent);
    assert_eq!(rows[0].body_text, None, "the link is erased at once");
    assert_eq!(rows[0].last_error.as_deref(), Some("share revoked"));
    assert!(rows[0].failed, "set aside for good");

    let smtp = SmtpListener::start_on(reserved).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.received().is_empty(),
        "a revoked share's mail went out"
    );
}

#[tokio::test]
async fn two_origins_delivering_one_outbox_send_every_message_exactly_once() {
    const MESSAGES: usize = 40;
    let smtp = SmtpListener::start().await;
    let stack = stack_mailing_to(smtp.port()).await;
    let mut settings = OriginSettings::new(stack.database_url(), &stack.own().token);
    settings.migrate = false;
    mail_to(&mut settings, smtp.port());
    let second = tokio::task::spawn_blocking(move || Origin::start(&settings))
        .await
        .unwrap();

    // All due at once, in one commit, so both loops find the same rows due.
    let mut db = PgConnection::connect(stack.database_url()).await.unwrap();
    sqlx::query(
        "INSERT INTO mail_outbox (id, kind, recipient, subject, body_text) \
         SELECT gen_random_uuid(), 'share', 'user' || n || '@example.org', 'Hello ' || n, 'body' \
         FROM generate_series(1, $1) AS n",
    )
    .bind(i32::try_from(MESSAGES).unwrap())
    .execute(&mut db)
    .await
    .unwrap();

    wait_for_outbox(&stack, "every row is marked sent", |rows| {
        rows.len() == MESSAGES && rows.iter().all(|row| row.sent)
    })
    .await;
    // Past a few more polls and a retry wait: any duplicate would have arrived by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = smtp.received();
    let mut recipients: Vec<String> = received.iter().map(|mail| mail.to.join(",")).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), MESSAGES, "a message went missing");
    assert_eq!(received.len(), MESSAGES, "a message was sent twice");
    let by_first = stack.origin_log().matches("\"mail sent\"").count();
    let by_second = second.log_text().matches("\"mail sent\"").count();
    println!("first origin sent {by_first}, second origin sent {by_second}");
    assert_eq!(by_first + by_second, MESSAGES);
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_still_unsent_when_the_origin_stops_is_sent_by_the_next_origin() {
    let reserved = ReservedPort::new();
    let mut stack = stack_mailing_to(reserved.port()).await;
    let owner = stack.signup("founder@example.com").await;
    invite(&stack, &owner.access_token, "patient@example.com", "member").await;
    wait_for_outbox(&stack, "a failed attempt is recorded", |rows| {
        rows.len() == 1 && rows[0].attempts > 0
    })
    .await;

    stack.own_mut().origin.process().signal("TERM");
    let status = tokio::task::block_in_place(|| {
        stack
            .own_mut()
            .origin
            .process()
            .wait_timeout(Duration::from_secs(15))
    });
    assert!(
        status.expect("the origin exits after SIGTERM").success(),
        "{}",
        stack.origin_log()
    );
    assert!(
        stack
            .origin_log()
            .contains("mail delivery stopped; unsent mail stays in the outbox")
    );
    let rows = outbox(&stack).await;
    assert!(!rows[0].sent && !rows[0].failed, "{rows:#?}");
    assert!(rows[0].body_text.is_some(), "nothing is lost at shutdown");

    let smtp = SmtpListener::start_on(reserved).await;
    let mut settings = OriginSettings::new(stack.database_url(), &stack.own().token);
    settings.migrate = false;
    mail_to(&mut settings, smtp.port());
    let _next = tokio::task::spawn_blocking(move || Origin::start(&settings))
        .await
        .unwrap();
    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["patient@example.com"]);
}

#[tokio::test]
async fn a_secret_request_mails_its_link_to_the_person_asked() {
    let smtp = SmtpListener::start().await;
    let stack = stack_mailing_to(smtp.port()).await;
    let owner = stack.signup("asker@example.com").await;
    let vault = stack.create_vault(&owner.access_token, "asked").await;
    let (status, created) = stack
        .call(
            Method::POST,
            &format!("/v1/vaults/{vault}/secret-requests"),
            &owner.access_token,
            Some(
                json!({"path": "aws/root", "description": "the AWS key for the backup job",
                        "recipient_email": "Keeper@Example.com"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    // The edge vouches for the address it was reached at, which links are written under.
    let url = format!("{}/r/{id}", stack.edge_base());
    assert_eq!(created["request_url"], url);
    assert_eq!(created["recipient_email"], "keeper@example.com");

    let mail = smtp.wait_for_message(DELIVERY).await;
    assert_eq!(mail.to, ["keeper@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Someone is asking you for a secret")
    );
    let body = mail.body();
    assert!(body.contains(&format!("\n{url}\n")), "{body}");
    assert!(body.contains("aws/root"), "{body}");
    assert!(body.contains("the AWS key for the backup job"), "{body}");
    wait_for_outbox(&stack, "the row is marked sent", |rows| {
        rows.len() == 1 && rows[0].sent && rows[0].kind == "secret_request"
    })
    .await;
    assert!(
        !stack.origin_log().contains(id),
        "the request id reached the log"
    );
}
