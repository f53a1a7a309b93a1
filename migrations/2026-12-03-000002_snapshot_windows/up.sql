-- A first sync reads the list in windows of creation time, each small enough to come in one
-- request (no page offsets, so no entity is lost when others are created or deleted while
-- the snapshot runs, whatever the list's sort order). snapshot_from is where the next window
-- starts (`Y-m-d H:i:s`, account time), so an interrupted snapshot resumes there.
ALTER TABLE sync_cursors ADD COLUMN snapshot_from TEXT;
-- The resync job that reset this cursor: its retries (and a rerun after a crash) resume the
-- snapshot they started instead of starting over.
ALTER TABLE sync_cursors ADD COLUMN snapshot_job TEXT;
