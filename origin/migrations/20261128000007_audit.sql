-- The audit trail: one row per security-relevant act, in one hash chain per org.
--
-- Each event carries the MAC of the previous event of its chain (prev_mac) and its own MAC
-- over a canonical encoding of every field plus prev_mac (origin/src/service/audit.rs). The
-- MAC is HMAC-SHA256 under a key that lives in the HSM, so someone who can write to this
-- database still cannot forge a row or re-link the chain around an edited one.
--
-- Order: an append locks its chain's head row, so appends to one chain are serialised across
-- every origin process and seq has no gaps; the head row is updated in the same transaction
-- as the event (and the act it records), so a rolled-back act leaves no event behind.
--
-- Events with no org (a failed sign-in for an unknown address) go to the chain of the nil
-- UUID, which no org's API shows.

CREATE TABLE audit_chain_heads (
    chain_id  uuid PRIMARY KEY,
    seq       bigint NOT NULL,
    mac       bytea NOT NULL
);

CREATE TABLE audit_events (
    id             uuid PRIMARY KEY,
    -- The org, or the nil UUID for events with no org.
    chain_id       uuid NOT NULL,
    seq            bigint NOT NULL CHECK (seq >= 1),
    -- No foreign keys: the trail outlives the users, agents and orgs it names.
    org_id         uuid,
    action         text NOT NULL,
    actor_type     text NOT NULL,
    actor_id       text,
    resource_type  text NOT NULL,
    resource_id    text,
    details        jsonb NOT NULL DEFAULT '{}',
    ip_address     text,
    created_at     timestamptz NOT NULL,
    prev_mac       bytea NOT NULL,
    mac            bytea NOT NULL,
    CONSTRAINT audit_events_chain_seq_key UNIQUE (chain_id, seq)
);
-- Queries are per org, newest first, optionally by action, actor or resource.
CREATE INDEX audit_events_org_time_idx ON audit_events (org_id, created_at DESC, seq DESC);
CREATE INDEX audit_events_org_action_idx ON audit_events (org_id, action, created_at DESC);
CREATE INDEX audit_events_org_actor_idx ON audit_events (org_id, actor_id, created_at DESC);
CREATE INDEX audit_events_org_resource_idx ON audit_events (org_id, resource_id, created_at DESC);

-- Append-only, whoever connects: rows can be inserted and read, never changed or removed.
-- (A superuser can still disable the trigger; the MAC chain is what catches that.)
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
