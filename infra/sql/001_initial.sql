-- Portable SQL: runs unchanged on SQLite (embedded default) and MySQL/MariaDB.
-- Times are Unix seconds (DOUBLE) so both engines compare them the same way.
CREATE TABLE users (
  id VARCHAR(36) NOT NULL PRIMARY KEY,
  email VARCHAR(255) NOT NULL UNIQUE,
  password_hash VARCHAR(255) NOT NULL,
  webhook_url VARCHAR(2048),
  created_at DOUBLE NOT NULL
);

CREATE TABLE jobs (
  id VARCHAR(36) NOT NULL PRIMARY KEY,
  user_id VARCHAR(36) NOT NULL,
  filename VARCHAR(255) NOT NULL,
  content_type VARCHAR(127) NOT NULL,
  size BIGINT NOT NULL,
  options TEXT NOT NULL,
  state VARCHAR(20) NOT NULL,
  progress INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  video_key VARCHAR(255) NOT NULL,
  mp3_key VARCHAR(255),
  mp3_size BIGINT,
  mp3_duration DOUBLE,
  mp3_bitrate INTEGER,
  summary_status VARCHAR(20),
  summary TEXT,
  category VARCHAR(100),
  context_truncated INTEGER,
  summary_reason TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_until DOUBLE,
  created_at DOUBLE NOT NULL,
  updated_at DOUBLE NOT NULL
);

CREATE INDEX jobs_by_user ON jobs (user_id, created_at);

CREATE TABLE processed_events (
  consumer VARCHAR(64) NOT NULL,
  event_id VARCHAR(128) NOT NULL,
  processed_at DOUBLE NOT NULL,
  PRIMARY KEY (consumer, event_id)
);

CREATE TABLE outbox (
  id VARCHAR(128) NOT NULL PRIMARY KEY,
  job_id VARCHAR(36) NOT NULL,
  payload TEXT NOT NULL,
  created_at DOUBLE NOT NULL,
  sent_at DOUBLE
);

CREATE INDEX outbox_by_job ON outbox (job_id, sent_at);

CREATE TABLE notifications (
  job_id VARCHAR(36) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  status VARCHAR(16) NOT NULL,
  claimed_at DOUBLE NOT NULL,
  sent_at DOUBLE,
  PRIMARY KEY (job_id, kind)
);
