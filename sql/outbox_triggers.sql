-- Optional: fills retailcrm_outbox from the platform's own writes to users and orders, so the
-- platform need not insert outbox rows itself. Install once per database:
--     psql "$DATABASE_URL" -f sql/outbox_triggers.sql
-- Remove with:
--     DROP TRIGGER retailcrm_outbox_users ON users; DROP TRIGGER retailcrm_outbox_orders ON orders;
-- The daemon's own writes (its connections set retailcrm_sync.writer = 'daemon') are skipped,
-- so a pull never echoes back as a push. Only projects with an integration are recorded.

CREATE OR REPLACE FUNCTION retailcrm_outbox_users() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed JSONB := '{}'::jsonb;
BEGIN
    IF current_setting('retailcrm_sync.writer', true) = 'daemon' THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM retailcrm_integrations i WHERE i.project_id = NEW.project_id) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- A user registered on the platform: the daemon creates the RetailCRM customer.
        IF NEW.retailcrm_customer_id IS NULL AND NEW.deleted_at IS NULL THEN
            INSERT INTO retailcrm_outbox (project_id, entity, local_id, fields)
            VALUES (NEW.project_id, 'customer', NEW.id, '{}'::jsonb);
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.email IS DISTINCT FROM OLD.email THEN
        changed := changed || jsonb_build_object('email', NEW.email);
    END IF;
    IF NEW.phone IS DISTINCT FROM OLD.phone THEN
        changed := changed || jsonb_build_object('phone', NEW.phone);
    END IF;
    IF NEW.first_name IS DISTINCT FROM OLD.first_name THEN
        changed := changed || jsonb_build_object('first_name', NEW.first_name);
    END IF;
    IF NEW.last_name IS DISTINCT FROM OLD.last_name THEN
        changed := changed || jsonb_build_object('last_name', NEW.last_name);
    END IF;
    IF changed <> '{}'::jsonb THEN
        INSERT INTO retailcrm_outbox (project_id, entity, local_id, fields)
        VALUES (NEW.project_id, 'customer', NEW.id, changed);
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION retailcrm_outbox_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('retailcrm_sync.writer', true) = 'daemon' THEN
        RETURN NEW;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NEW.retailcrm_order_id IS NOT NULL THEN
        INSERT INTO retailcrm_outbox (project_id, entity, local_id, fields)
        VALUES (NEW.project_id, 'order', NEW.id, jsonb_build_object('status', NEW.status));
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS retailcrm_outbox_users ON users;
CREATE TRIGGER retailcrm_outbox_users AFTER INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION retailcrm_outbox_users();
DROP TRIGGER IF EXISTS retailcrm_outbox_orders ON orders;
CREATE TRIGGER retailcrm_outbox_orders AFTER UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION retailcrm_outbox_orders();
