-- Messages that can never be delivered are set aside instead of retried for ever: a recipient
-- address that does not parse, or an SMTP server refusing the mailbox or message for good
-- (a 55x reply). `failed_at` says when (for operators; `last_error` says why), and the delivery
-- loop also moves `next_attempt_at` to 'infinity', so no loop, old or new, ever finds the row
-- due. Like a sent message's, the body is erased: it may hold a share link.
--
-- Nullable and unused by older origins: safe to apply while they still serve.
ALTER TABLE mail_outbox ADD COLUMN failed_at timestamptz;
