-- Mail volume limits (origin/src/store/outbox.rs): how much went to one address in the last
-- hour, from any org, and how much one org sent in the last day, are counted on these.
CREATE INDEX mail_outbox_recipient_time_idx ON mail_outbox (recipient, created_at);
CREATE INDEX mail_outbox_org_time_idx ON mail_outbox (org_id, created_at);
