-- Audit events sealed per batch (issue 10). Until now every event's `mac` was HMAC-SHA256
-- computed in the HSM: one HSM call per event, the largest cost of a secret read. From here
-- on (`link_scheme` 2) an event's `mac` is SHA-256 over the same encoding, so the chain is a
-- plain hash chain, and each batch the appender writes is sealed by ONE HMAC in the HSM over
-- the last event of every chain it touched: `audit_seals.entries` lists them, each
-- (chain_id 16 bytes, seq 8 bytes big-endian, mac 32 bytes), in chain_id order, and the sealed
-- events name their seal in `seal_id`. A chain's newest event is therefore always sealed, and
-- an edit anywhere before it changes a hash the next seal covers. Events stored before this
-- migration keep `link_scheme` 1 (their own HMAC each) and verify as before.

CREATE TABLE audit_seals (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    entries     bytea NOT NULL CHECK (octet_length(entries) > 0 AND octet_length(entries) % 56 = 0),
    mac         bytea NOT NULL
);

CREATE TRIGGER audit_seals_append_only
    BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_seals_no_truncate
    BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- Constant defaults: no table rewrite, however long the trail already is.
ALTER TABLE audit_events
    ADD COLUMN link_scheme smallint NOT NULL DEFAULT 1 CHECK (link_scheme IN (1, 2)),
    ADD COLUMN seal_id uuid;
