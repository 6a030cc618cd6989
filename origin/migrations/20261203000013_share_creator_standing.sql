-- A share works only while its creator still could have made it: a user creator must still
-- be a member of the share's org, an agent creator must be active, unexpired and still hold
-- the token version it had when it made the link. Deactivating an agent, rotating its key or
-- changing its settings bumps that version (origin/src/store/agents.rs), so its links stop
-- working with its tokens. The check is part of every read (origin/src/store/shares.rs).
--
-- creator_token_version is the agent's token_version at creation; NULL for user creators.
-- Agent shares made before this column take the agent's current version: whatever happened
-- to the agent before cannot be told now, and the links keep working until the next bump.
ALTER TABLE shares ADD COLUMN creator_token_version bigint;

UPDATE shares sh SET creator_token_version = a.token_version
FROM agents a
WHERE a.id = sh.created_by_agent;

ALTER TABLE shares ADD CONSTRAINT shares_creator_token_version_shape
    CHECK ((created_by_agent IS NULL) = (creator_token_version IS NULL));

-- The org-wide listing for owners and admins: one org's shares, newest first, by keyset.
CREATE INDEX shares_org_created_idx ON shares (org_id, created_at DESC, id DESC);
