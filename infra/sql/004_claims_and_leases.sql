-- Exactly-once effects under concurrency (portable SQL: SQLite and MySQL/MariaDB).
--
-- outbox.claimed_until: a publisher claims unsent rows before publishing them, so two handlers
-- or relays running at once never send the same row twice; a claim whose publisher died runs
-- out and the relay takes the row again.
ALTER TABLE outbox ADD COLUMN claimed_until DOUBLE;

CREATE INDEX outbox_unsent ON outbox (sent_at, created_at);

-- One lease per (job, step) that does long or paid work (convert, summarize): held by one
-- worker and renewed by its heartbeat. A lease that runs out belongs to a worker that died;
-- a released one (is_free = 1) was handed back on shutdown or a transient error. The relay
-- re-announces the event that started the step (payload) when nobody picks it up again.
CREATE TABLE step_leases (
  job_id VARCHAR(36) NOT NULL,
  step VARCHAR(32) NOT NULL,
  holder VARCHAR(64) NOT NULL,
  lease_until DOUBLE NOT NULL,
  is_free INTEGER NOT NULL DEFAULT 0,
  takeovers INTEGER NOT NULL DEFAULT 0,
  announced_at DOUBLE NOT NULL,
  payload TEXT NOT NULL,
  PRIMARY KEY (job_id, step)
);

CREATE INDEX step_leases_by_expiry ON step_leases (lease_until);

-- The lease moved to step_leases.
ALTER TABLE jobs DROP COLUMN lease_until;
