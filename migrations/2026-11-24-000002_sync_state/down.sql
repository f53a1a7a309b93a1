DROP TABLE IF EXISTS dead_records;
DROP TABLE IF EXISTS sync_runs;
DROP TABLE IF EXISTS sync_cursors;
