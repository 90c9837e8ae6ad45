-- Which models produced a job's summary (the transcript itself is a blob: transcripts/<job_id>.txt).
-- One column per statement: SQLite's ALTER TABLE adds one column at a time.
ALTER TABLE jobs ADD COLUMN transcribe_model VARCHAR(100);

ALTER TABLE jobs ADD COLUMN summary_model VARCHAR(100);
