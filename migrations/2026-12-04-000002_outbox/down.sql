ALTER TABLE retailcrm_integrations DROP COLUMN status_back_mapping, DROP COLUMN conflict_rule;
DROP TRIGGER retailcrm_outbox_notify ON retailcrm_outbox;
DROP FUNCTION retailcrm_outbox_notify();
DROP TABLE retailcrm_outbox;
