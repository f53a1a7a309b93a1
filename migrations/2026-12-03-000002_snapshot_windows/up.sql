-- A first sync reads the list in windows of creation time, each small enough to come in one
-- request (no page offsets, so no entity is lost when others are created or deleted while
-- the snapshot runs, whatever the list's sort order). snapshot_from is where the next window
-- starts (`Y-m-d H:i:s`, account time), so an interrupted snapshot resumes there.
ALTER TABLE sync_cursors ADD COLUMN snapshot_from TEXT;
-- The account's clock when the anchor was taken (history's generatedAt): entities created
-- later are in history after the anchor, so the windows need not go past it (plus a margin).
ALTER TABLE sync_cursors ADD COLUMN snapshot_until TEXT;
-- The resync job that reset this cursor: its retries (and a rerun after a crash) resume the
-- snapshot they started instead of starting over.
ALTER TABLE sync_cursors ADD COLUMN snapshot_job TEXT;

-- A run whose daemon died (kill -9, power loss) or lost the job's lease is closed as
-- 'abandoned' when the project's next run starts, so the run history never shows it running.
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_outcome_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_outcome_check
    CHECK (outcome IN ('running', 'succeeded', 'failed', 'cancelled', 'abandoned'));
