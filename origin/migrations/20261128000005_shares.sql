-- Share links: one secret's current value handed to one recipient, until an expiry, for at
-- most a number of reads, optionally behind a passphrase and an IP allowlist.
--
-- The id is 128 random bits (not a v4 UUID's 122): for a link share it is the only
-- credential. The passphrase is kept only as an Argon2id hash. A read checks and counts in
-- one UPDATE (origin/src/store/shares.rs), so concurrent readers can never overdraw
-- max_access_count.

CREATE TABLE shares (
    id                  uuid PRIMARY KEY,
    org_id              uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_id           uuid NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    vault_id            uuid NOT NULL REFERENCES vaults (id) ON DELETE CASCADE,
    -- Who made it. A share outlives nobody: removing its creator removes it.
    created_by_user     uuid REFERENCES users (id) ON DELETE CASCADE,
    created_by_agent    uuid REFERENCES agents (id) ON DELETE CASCADE,
    recipient_type      text NOT NULL CHECK (recipient_type IN
                            ('anyone_with_link', 'user', 'agent', 'external_email', 'creator')),
    -- The user or agent that may read it (for 'creator': the creator).
    recipient_user_id   uuid REFERENCES users (id) ON DELETE CASCADE,
    recipient_agent_id  uuid REFERENCES agents (id) ON DELETE CASCADE,
    -- Normalised (trimmed, NFKC, lower case), for 'external_email' only.
    recipient_email     text,
    passphrase_hash     text,
    -- NULL: any address. Never empty (refused at creation).
    ip_allowlist        cidr[],
    expires_at          timestamptz NOT NULL,
    max_access_count    integer CHECK (max_access_count IS NULL OR max_access_count >= 1),
    access_count        integer NOT NULL DEFAULT 0,
    revoked_at          timestamptz,
    accepted_at         timestamptz,
    declined_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shares_one_creator CHECK (num_nonnulls(created_by_user, created_by_agent) = 1),
    -- Each kind names exactly the recipient columns it uses, so a row cannot say one thing
    -- in recipient_type and another in the columns that are checked.
    CONSTRAINT shares_recipient_shape CHECK (
        CASE recipient_type
            WHEN 'anyone_with_link' THEN num_nonnulls(recipient_user_id, recipient_agent_id, recipient_email) = 0
            WHEN 'external_email' THEN recipient_email IS NOT NULL
                                   AND num_nonnulls(recipient_user_id, recipient_agent_id) = 0
            WHEN 'user' THEN recipient_user_id IS NOT NULL
                         AND num_nonnulls(recipient_agent_id, recipient_email) = 0
            WHEN 'agent' THEN recipient_agent_id IS NOT NULL
                          AND num_nonnulls(recipient_user_id, recipient_email) = 0
            WHEN 'creator' THEN num_nonnulls(recipient_user_id, recipient_agent_id) = 1
                            AND recipient_email IS NULL
        END
    )
);

-- Outbound listings: the shares one user or agent created, newest first.
CREATE INDEX shares_created_by_user_idx ON shares (created_by_user, created_at DESC)
    WHERE created_by_user IS NOT NULL;
CREATE INDEX shares_created_by_agent_idx ON shares (created_by_agent, created_at DESC)
    WHERE created_by_agent IS NOT NULL;
-- Inbound listings: the shares addressed to one user, agent or email address.
CREATE INDEX shares_recipient_user_idx ON shares (recipient_user_id)
    WHERE recipient_user_id IS NOT NULL;
CREATE INDEX shares_recipient_agent_idx ON shares (recipient_agent_id)
    WHERE recipient_agent_id IS NOT NULL;
CREATE INDEX shares_recipient_email_idx ON shares (recipient_email)
    WHERE recipient_email IS NOT NULL;
-- Deleting a secret or vault cascades here.
CREATE INDEX shares_secret_id_idx ON shares (secret_id);
CREATE INDEX shares_vault_id_idx ON shares (vault_id);
