-- The dispatcher's event log: every event it saw once, and every delivery attempt of it.
-- Portable SQL (SQLite and MySQL/MariaDB); times are Unix seconds (DOUBLE).
CREATE TABLE event_log (
  id VARCHAR(128) NOT NULL PRIMARY KEY,
  type VARCHAR(128) NOT NULL,
  subject VARCHAR(255) NOT NULL,
  payload TEXT NOT NULL,
  first_seen DOUBLE NOT NULL
);

CREATE INDEX event_log_by_time ON event_log (first_seen);

CREATE TABLE event_deliveries (
  id VARCHAR(36) NOT NULL PRIMARY KEY,
  event_id VARCHAR(128) NOT NULL,
  target VARCHAR(64) NOT NULL,
  attempt INTEGER NOT NULL,
  status INTEGER NOT NULL,
  outcome VARCHAR(20) NOT NULL,
  duration DOUBLE NOT NULL,
  delivered_at DOUBLE NOT NULL,
  detail TEXT
);

CREATE INDEX event_deliveries_by_event ON event_deliveries (event_id, delivered_at);
