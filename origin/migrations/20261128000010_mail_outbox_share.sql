-- Which share a queued message carries the link of (its fingerprint, never the id: the id is
-- the link's credential, and this column outlives the erased body). Revoking the share
-- cancels its mail if it has not gone yet.
--
-- Nullable and unused by older origins: safe to apply while they still serve.
ALTER TABLE mail_outbox ADD COLUMN share_fingerprint text;
CREATE INDEX mail_outbox_unsent_share_idx ON mail_outbox (share_fingerprint)
    WHERE sent_at IS NULL AND share_fingerprint IS NOT NULL;
