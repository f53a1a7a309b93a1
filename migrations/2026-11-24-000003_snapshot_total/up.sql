-- The list's totalCount when the last snapshot page was read, so a snapshot resumed in a later
-- run can tell that entities were deleted meanwhile (which shifts unread entities onto pages
-- already read) and step back to read them.
ALTER TABLE sync_cursors ADD COLUMN snapshot_total BIGINT;
