ALTER TABLE retailcrm_integrations DROP COLUMN orders_created_from;
