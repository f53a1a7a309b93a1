-- Two-way sync: the platform's changes to push to RetailCRM (a transactional outbox).
-- The platform inserts a row in the same transaction as its own change (or installs the
-- trigger functions of sql/outbox_triggers.sql); the daemon pushes pending rows per project, in
-- id order, and records the outcome in its own columns.
CREATE TABLE retailcrm_outbox (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    -- 'customer' (local_id = users.id) or 'order' (local_id = orders.id); anything else ends
    -- as state 'failed' with the reason, it is not refused by the table.
    entity TEXT NOT NULL,
    local_id BIGINT NOT NULL,
    -- Only what changed: customers {email, phone, first_name, last_name}; orders {status}
    -- (a platform status such as "DELIVERED"). `{}` for a new platform user to create.
    fields JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The daemon's columns.
    state TEXT NOT NULL DEFAULT 'pending'
        CONSTRAINT retailcrm_outbox_state_ck
        CHECK (state IN ('pending', 'sent', 'failed', 'conflict')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TIMESTAMPTZ,
    retailcrm_id BIGINT,
    -- For state 'conflict': {field: {"platform": v, "retailcrm": v}} of the fields not pushed.
    conflict JSONB
);
CREATE INDEX retailcrm_outbox_pending_idx ON retailcrm_outbox (project_id, id)
    WHERE state = 'pending';
CREATE INDEX retailcrm_outbox_entity_idx ON retailcrm_outbox (project_id, entity, local_id);

-- Wake the daemon at once: NOTIFY retailcrm_outbox with the project id (delivered on commit).
CREATE FUNCTION retailcrm_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('retailcrm_outbox', NEW.project_id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER retailcrm_outbox_notify AFTER INSERT ON retailcrm_outbox
    FOR EACH ROW EXECUTE FUNCTION retailcrm_outbox_notify();

-- Per integration: how a field changed on both sides is settled, and platform status ->
-- RetailCRM status code overrides for pushing order statuses.
ALTER TABLE retailcrm_integrations
    ADD COLUMN conflict_rule TEXT NOT NULL DEFAULT 'retailcrm_wins'
        CONSTRAINT retailcrm_integrations_conflict_rule_ck
        CHECK (conflict_rule IN ('retailcrm_wins', 'platform_wins')),
    ADD COLUMN status_back_mapping JSONB NOT NULL DEFAULT '{}'::jsonb;
