-- Vaults, secrets with versions, and access policies.
--
-- Secret values exist here only as envelope blobs (origin/src/crypto/envelope.rs): AES-256-GCM
-- under a per-version data key that is itself stored only wrapped by the HSM's KEK.

CREATE TABLE vaults (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description       text,
    created_by_user   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by_agent  uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- A deleted vault's secrets become unreadable at once; rows stay until purged.
    deleted_at        timestamptz
);
CREATE INDEX vaults_org_id_idx ON vaults (org_id) WHERE deleted_at IS NULL;

-- One row per path; its versions hold the values.
CREATE TABLE secrets (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    vault_id         uuid NOT NULL REFERENCES vaults (id) ON DELETE CASCADE,
    path             text NOT NULL,
    current_version  integer NOT NULL CHECK (current_version >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Deleted but known: reads answer 410, a new PUT revives the path with a new version.
    deleted_at       timestamptz,
    CONSTRAINT secrets_vault_path_key UNIQUE (vault_id, path)
);
-- Prefix listings (`path LIKE 'prefix%'`) use this index.
CREATE INDEX secrets_vault_path_prefix_idx ON secrets (vault_id, path text_pattern_ops);

CREATE TABLE secret_versions (
    secret_id         uuid NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    version           integer NOT NULL CHECK (version >= 1),
    type              text NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}',
    -- The envelope blob (format byte, KEK id, wrapped data key, nonce, ciphertext and tag).
    sealed            bytea NOT NULL,
    -- The KEK that wraps this version's data key, as in the blob: lets KEK rotation find
    -- what still needs re-wrapping in batches.
    kek_id            bytea NOT NULL,
    expires_at        timestamptz,
    max_access_count  integer CHECK (max_access_count IS NULL OR max_access_count >= 1),
    access_count      integer NOT NULL DEFAULT 0,
    created_by_user   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by_agent  uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    disabled_at       timestamptz,
    PRIMARY KEY (secret_id, version)
);
CREATE INDEX secret_versions_kek_id_idx ON secret_versions (kek_id);

CREATE TABLE policies (
    id                   uuid PRIMARY KEY,
    org_id               uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    vault_id             uuid NOT NULL REFERENCES vaults (id) ON DELETE CASCADE,
    principal_type       text NOT NULL CHECK (principal_type IN ('user', 'agent')),
    principal_id         uuid NOT NULL,
    secret_path_pattern  text NOT NULL,
    permissions          text[] NOT NULL,
    effect               text NOT NULL DEFAULT 'allow' CHECK (effect IN ('allow', 'deny')),
    priority             integer NOT NULL DEFAULT 0,
    conditions           jsonb NOT NULL DEFAULT '{}',
    expires_at           timestamptz,
    created_by           uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- Evaluation reads the policies of one principal on one vault: one indexed lookup.
CREATE INDEX policies_principal_idx ON policies (vault_id, principal_type, principal_id);

-- Idempotent writes: the same key from the same principal replays the first answer; the same
-- key with another body is a conflict. Responses of writes carry metadata, never values.
CREATE TABLE idempotency_keys (
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    principal        text NOT NULL,
    key              text NOT NULL,
    request_hash     bytea NOT NULL,
    response_status  integer NOT NULL,
    response_body    jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, principal, key)
);
