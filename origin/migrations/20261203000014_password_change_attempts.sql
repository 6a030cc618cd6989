-- Password changes are limited per user: each attempt takes one of a few per window in SQL,
-- before Argon2 runs, so a stolen access token cannot be used to guess the current password
-- (and so take the account over) at any speed, from any number of origins. A change that
-- succeeds clears the count.
ALTER TABLE users ADD COLUMN password_change_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_change_window timestamptz;
