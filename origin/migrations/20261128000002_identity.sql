-- Identity: users (humans) belong to one org with a role; sessions group the access and
-- refresh tokens of one login; personal API keys; agents; invitations.
--
-- Revocation model: every access token names its principal's token_version (and, for users,
-- its session). The origin compares both on every request, so bumping a version or revoking
-- a session takes effect at once on every origin.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email          text NOT NULL,
    display_name   text NOT NULL DEFAULT '',
    password_hash  text,
    google_sub     text,
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_version  bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_org_id_idx ON users (org_id);
CREATE UNIQUE INDEX users_google_sub_key ON users (google_sub) WHERE google_sub IS NOT NULL;

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    key_prefix    text NOT NULL,
    key_hash      bytea NOT NULL,
    scopes        text[] NOT NULL DEFAULT '{}',
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_key_prefix_idx ON api_keys (key_prefix);
CREATE INDEX api_keys_org_user_idx ON api_keys (org_id, user_id);

-- One login (password, Google or API key exchange). Refresh tokens rotate within it.
CREATE TABLE auth_sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Set when the session came from exchanging a personal API key: revoking the key
    -- revokes the session.
    api_key_id  uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);
CREATE INDEX auth_sessions_api_key_id_idx ON auth_sessions (api_key_id) WHERE api_key_id IS NOT NULL;

-- Opaque refresh tokens, stored as SHA-256. Each works once; presenting a used one revokes
-- its whole session (the refresh family).
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE agents (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name               text NOT NULL,
    description        text,
    scopes             text[] NOT NULL DEFAULT '{}',
    vault_ids          uuid[] NOT NULL DEFAULT '{}',
    is_active          boolean NOT NULL DEFAULT true,
    token_ttl_seconds  integer,
    expires_at         timestamptz,
    key_prefix         text NOT NULL,
    key_hash           bytea NOT NULL,
    token_version      bigint NOT NULL DEFAULT 0,
    created_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_org_id_idx ON agents (org_id);
CREATE INDEX agents_key_prefix_idx ON agents (key_prefix);

CREATE TABLE org_invites (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz
);
-- At most one open invitation per email: signup must know which org to join.
CREATE UNIQUE INDEX org_invites_open_email_key ON org_invites (email) WHERE accepted_at IS NULL;
