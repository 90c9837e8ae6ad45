-- Sign-in throttling and sessions that end (portable SQL: SQLite and MySQL/MariaDB).
--
-- users.session_generation: every session token carries the generation it was issued in
-- (claim "gen"); a password change adds one, so every older token is refused at once. A
-- counter rather than a time: no comparison of clocks across instances, no same-second window.
ALTER TABLE users ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0;

-- One row per throttled bucket: a scope ("login-account", "login-address", "signup-address")
-- and a subject (the SHA-256 of the email or the client's address, so no typed email is kept).
-- An attempt is counted before the password is checked and given back if it succeeds, so
-- attempts running at the same time cannot slip past the limit. A row whose last failure is
-- older than its policy's memory starts over; old rows are pruned.
CREATE TABLE auth_throttle (
  scope VARCHAR(32) NOT NULL,
  subject VARCHAR(64) NOT NULL,
  failures INTEGER NOT NULL,
  locked_until DOUBLE NOT NULL,
  last_failure DOUBLE NOT NULL,
  PRIMARY KEY (scope, subject)
);

CREATE INDEX auth_throttle_by_age ON auth_throttle (last_failure);
