-- Optional sync filter of an integration (the original's roadmap: "sync filters by date"):
-- only orders created on or after this date (in the RetailCRM account's timezone) are synced.
-- NULL syncs every order. Nullable and without a default, so the platform's existing writes
-- of this table are unaffected.
ALTER TABLE retailcrm_integrations ADD COLUMN orders_created_from DATE;
