-- Secret requests: an agent or user asks a person for a secret. The person opens the link
-- (`/r/{id}`), types the value, and it is written as a new version at `path` in `vault_id`, on
-- behalf of the creator, whose standing and `write` permission are checked again at that
-- moment (origin/src/service/secret_requests.rs).
--
-- The id is 128 random bits: while pending, it is the credential that lets one value in.
-- Fulfilling takes the row's lock (FOR UPDATE) and writes the version and the fulfilment in
-- one transaction, so a request takes exactly one value.

CREATE TABLE secret_requests (
    id                    uuid PRIMARY KEY,
    org_id                uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    vault_id              uuid NOT NULL REFERENCES vaults (id) ON DELETE CASCADE,
    path                  text NOT NULL,
    description           text NOT NULL,
    secret_type           text NOT NULL,
    -- Who asked. A request outlives nobody: removing its creator removes it.
    created_by_user       uuid REFERENCES users (id) ON DELETE CASCADE,
    created_by_agent      uuid REFERENCES agents (id) ON DELETE CASCADE,
    -- The creator's token version when it asked: a bump (deactivation, key rotation, a change
    -- of settings, a password change) closes its pending requests, as it does its shares.
    creator_token_version bigint NOT NULL,
    -- The scopes of the session that asked (empty: not scoped): the write is held to them.
    creator_scopes        text[] NOT NULL DEFAULT '{}',
    -- The address the creator asked from: the write's policy conditions see it.
    creator_ip            inet,
    -- Normalised, when the link was mailed.
    recipient_email       text,
    expires_at            timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    fulfilled_at          timestamptz,
    fulfilled_version     integer,
    cancelled_at          timestamptz,
    CONSTRAINT secret_requests_one_creator CHECK (num_nonnulls(created_by_user, created_by_agent) = 1),
    CONSTRAINT secret_requests_fulfilled_shape CHECK ((fulfilled_at IS NULL) = (fulfilled_version IS NULL)),
    CONSTRAINT secret_requests_closed_once CHECK (num_nonnulls(fulfilled_at, cancelled_at) <= 1)
);

-- A vault's requests, newest first.
CREATE INDEX secret_requests_vault_idx ON secret_requests (vault_id, created_at DESC, id DESC);
CREATE INDEX secret_requests_user_idx ON secret_requests (created_by_user) WHERE created_by_user IS NOT NULL;
CREATE INDEX secret_requests_agent_idx ON secret_requests (created_by_agent) WHERE created_by_agent IS NOT NULL;
