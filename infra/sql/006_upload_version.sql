-- The upload `complete` checked, as S3 identifies it (portable SQL: SQLite and MySQL/MariaDB).
--
-- A presigned PUT stays valid after `complete`, so its holder could replace the checked object
-- before conversion; the converter reads the object only if it still has this ETag (If-Match)
-- and, on a versioned bucket, this version (VersionId). NULL where the bytes passed through the
-- functions (local folder, GridFS), which refuse an upload once the job left awaiting_upload.
ALTER TABLE jobs ADD COLUMN video_etag VARCHAR(255);

ALTER TABLE jobs ADD COLUMN video_version VARCHAR(1024);
