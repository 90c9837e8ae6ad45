-- What the transcribe step made of a job's MP3 (portable SQL: SQLite and MySQL/MariaDB).
-- The transcript itself is a blob: transcripts/<job_id>.json (vid2mp3.speech.formats.to_json).
-- One column per statement: SQLite's ALTER TABLE adds one column at a time.
ALTER TABLE jobs ADD COLUMN transcript_status VARCHAR(16);

ALTER TABLE jobs ADD COLUMN language VARCHAR(16);

ALTER TABLE jobs ADD COLUMN transcript_reason TEXT;
