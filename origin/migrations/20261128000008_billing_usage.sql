-- Billing usage: every org's tier, and one row per metered API request.
--
-- The tier names a set of limits and prices in the origin's configuration
-- (OXVAULT_BILLING_TIER_*); an unknown name is treated as `free`. Changing an org's tier is
-- an UPDATE of this column (no API yet). A constant default keeps the ALTER instant and safe
-- while older origins still serve.
ALTER TABLE organizations ADD COLUMN billing_tier text NOT NULL DEFAULT 'free';

-- Rows arrive in batches from each origin's meter (origin/src/http/metering.rs), up to a flush
-- interval after the request. The id is made when the request is metered, so a batch retried
-- after an ambiguous failure (committed, but the answer lost) inserts nothing twice.
--
-- No foreign key to organizations: a usage row is a log entry, and a batch must never be
-- refused (and retried forever) because one of its orgs is gone.
CREATE TABLE usage_events (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL,
    principal_type  text NOT NULL CHECK (principal_type IN ('user', 'agent')),
    principal_id    uuid NOT NULL,
    method          text NOT NULL,
    -- The route template (`/v1/vaults/{vault_id}/secrets/{*path}`), never the concrete path.
    endpoint        text NOT NULL,
    status_code     smallint NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    created_at      timestamptz NOT NULL
);
-- A month of one org is one range of this index, already in billing order (created_at, id);
-- the history reads it backwards.
CREATE INDEX usage_events_org_time_idx ON usage_events (org_id, created_at, id);
