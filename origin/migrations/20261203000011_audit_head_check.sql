-- Group commit, fast path: an origin's appender remembers the head of each chain it wrote
-- last and appends its next batch in one statement, moving each head only if it is still
-- where the appender left it (`seq = expected`). When another origin moved a head meanwhile,
-- this check fails the whole statement, so no event is stored against a stale head; the
-- appender then locks the heads and appends as before.
CREATE FUNCTION audit_require_moved(moved bigint, expected bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF moved <> expected THEN
        RAISE EXCEPTION 'audit chain heads moved (% of % still in place)', moved, expected
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$;
