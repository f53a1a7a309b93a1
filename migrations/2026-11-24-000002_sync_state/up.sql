-- Sync state owned by retailcrm-sync: cursors, runs and isolated (poison) records.

-- One cursor per project and stream. `version` is bumped by every commit (compare-and-set),
-- so two concurrent syncs of one stream can never both move it.
CREATE TABLE sync_cursors (
    project_id    BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    stream        TEXT NOT NULL CHECK (stream IN ('orders', 'customers')),
    since_id      BIGINT,
    snapshot_page INTEGER,
    version       BIGINT NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, stream)
);

CREATE TABLE sync_runs (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job_id      TEXT NOT NULL,
    job_kind    TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    outcome     TEXT NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'succeeded', 'failed', 'cancelled')),
    counts      JSONB NOT NULL DEFAULT '{}'::jsonb,
    error       TEXT
);
CREATE INDEX sync_runs_project_started_idx ON sync_runs (project_id, started_at DESC);

CREATE TABLE dead_records (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    stream     TEXT NOT NULL CHECK (stream IN ('orders', 'customers')),
    entity_id  BIGINT,
    raw        JSONB NOT NULL,
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dead_records_project_created_idx ON dead_records (project_id, created_at DESC);
