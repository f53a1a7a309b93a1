ALTER TABLE sync_cursors DROP COLUMN snapshot_total;
