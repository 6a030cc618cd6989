-- Outgoing mail. A message is written here in the same transaction as the act that causes it
-- (a share for an outside address, an invitation), so it is sent if and only if that act
-- committed; a delivery loop sends it, retrying with backoff while the SMTP server refuses.
-- Several origins may deliver at once: each claims due rows with FOR UPDATE SKIP LOCKED.
--
-- A body may carry a share link, which is a credential: it is erased once the message is sent.

CREATE TABLE mail_outbox (
    id               uuid PRIMARY KEY,
    org_id           uuid REFERENCES organizations (id) ON DELETE CASCADE,
    -- What caused it, for operators: 'share', 'invite'.
    kind             text NOT NULL,
    recipient        text NOT NULL,
    subject          text NOT NULL,
    -- NULL once sent.
    body_text        text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- The last delivery failure, for operators (never message content).
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
-- The delivery loop's question: what is due and unsent, oldest first.
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
