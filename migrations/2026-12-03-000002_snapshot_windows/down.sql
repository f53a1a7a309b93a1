UPDATE sync_runs SET outcome = 'cancelled' WHERE outcome = 'abandoned';
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_outcome_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_outcome_check
    CHECK (outcome IN ('running', 'succeeded', 'failed', 'cancelled'));
ALTER TABLE sync_cursors DROP COLUMN snapshot_job;
ALTER TABLE sync_cursors DROP COLUMN snapshot_until;
ALTER TABLE sync_cursors DROP COLUMN snapshot_from;
