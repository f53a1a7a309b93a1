ALTER TABLE sync_cursors DROP COLUMN snapshot_job;
ALTER TABLE sync_cursors DROP COLUMN snapshot_from;
