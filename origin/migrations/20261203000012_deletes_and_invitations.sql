-- Deletes that stay deleted, and invitations redeemed only with the mailed token.
--
-- 1. A deleted secret is a tombstone: a new write at its path starts a new secret (new id,
--    versions from 1), so no version, value or share of the deleted one comes back. Only one
--    live secret per path; tombstones may repeat.
ALTER TABLE secrets DROP CONSTRAINT secrets_vault_path_key;
CREATE UNIQUE INDEX secrets_live_path_key ON secrets (vault_id, path) WHERE deleted_at IS NULL;

-- Secrets deleted before this migration: erase their versions and end their shares now, as
-- every delete does from here on.
DELETE FROM secret_versions sv USING secrets s
 WHERE s.id = sv.secret_id AND s.deleted_at IS NOT NULL;
UPDATE shares sh SET revoked_at = now() FROM secrets s
 WHERE s.id = sh.secret_id AND s.deleted_at IS NOT NULL AND sh.revoked_at IS NULL;

-- 2. Addresses proven by their owner: by Google (email_verified) or by an invitation's mailed
--    token. Google sign-in links only to a verified account; an unverified one is taken over
--    for the verified owner (origin/src/service/auth.rs). Accounts made by Google alone were
--    verified by Google; accounts that had a password too may have been pre-hijacked, so they
--    stay unverified and the next Google sign-in cleans them.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
UPDATE users SET email_verified_at = created_at
 WHERE google_sub IS NOT NULL AND password_hash IS NULL;

-- 3. Invitations are redeemed only with the single-use token their mail carries (stored as
--    SHA-256), by the signed-in owner of the address. Several orgs may invite one address at
--    once (no org can lock a person out by inviting first); one open invitation per org and
--    address. Open invitations from before had no token and could never be redeemed now.
DELETE FROM org_invites WHERE accepted_at IS NULL;
DROP INDEX org_invites_open_email_key;
ALTER TABLE org_invites ADD COLUMN token_hash bytea;
ALTER TABLE org_invites ADD COLUMN accepted_by uuid REFERENCES users (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX org_invites_open_org_email_key ON org_invites (org_id, email)
 WHERE accepted_at IS NULL;
CREATE UNIQUE INDEX org_invites_token_hash_key ON org_invites (token_hash);
