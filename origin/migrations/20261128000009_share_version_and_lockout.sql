-- Shares hand out the version that was current when they were made, not whatever the secret
-- holds later: rotating a secret (say, after a suspected leak) must not send the new value
-- down links made for the old one. NULL (shares made before this column) reads the current
-- version, as those shares always did.
ALTER TABLE shares ADD COLUMN secret_version integer CHECK (secret_version IS NULL OR secret_version >= 1);

-- Wrong passphrases are counted per share; past a fixed number the share stops opening for
-- anyone (origin/src/store/shares.rs), so holding the link does not allow guessing forever
-- from many addresses.
ALTER TABLE shares ADD COLUMN failed_passphrase_attempts integer NOT NULL DEFAULT 0;
