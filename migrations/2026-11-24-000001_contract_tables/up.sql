-- Contract tables read by the loyalty platform (DESIGN.md 3). Names are a contract.

-- The platform owns `projects`; create it only when absent so the daemon can run standalone,
-- and mark it so that down.sql drops it only if this migration created it.
DO $$
BEGIN
    IF to_regclass('projects') IS NULL THEN
        CREATE TABLE projects (
            id   BIGINT PRIMARY KEY,
            name TEXT
        );
        COMMENT ON TABLE projects IS 'created by retailcrm-sync (absent before)';
    END IF;
END
$$;

CREATE TABLE retailcrm_integrations (
    id                    BIGSERIAL PRIMARY KEY,
    project_id            BIGINT NOT NULL UNIQUE REFERENCES projects (id) ON DELETE CASCADE,
    api_url               TEXT NOT NULL,
    api_key               TEXT NOT NULL,
    is_active             BOOLEAN NOT NULL DEFAULT TRUE,
    sync_orders           BOOLEAN NOT NULL DEFAULT TRUE,
    sync_customers        BOOLEAN NOT NULL DEFAULT TRUE,
    sync_interval_minutes INTEGER NOT NULL DEFAULT 60 CHECK (sync_interval_minutes > 0),
    status_mapping        JSONB NOT NULL DEFAULT '{}'::jsonb,
    last_sync_at          TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                    BIGSERIAL PRIMARY KEY,
    project_id            BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email                 TEXT,
    phone                 TEXT,
    first_name            TEXT,
    last_name             TEXT,
    retailcrm_customer_id BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at            TIMESTAMPTZ
);
-- One user per RetailCRM customer in a project; lookups by e-mail and phone (normalised).
CREATE UNIQUE INDEX users_project_customer_uq ON users (project_id, retailcrm_customer_id)
    WHERE retailcrm_customer_id IS NOT NULL;
CREATE INDEX users_project_email_idx ON users (project_id, email) WHERE email IS NOT NULL;
CREATE INDEX users_project_phone_idx ON users (project_id, phone) WHERE phone IS NOT NULL;

CREATE TABLE orders (
    id                 BIGSERIAL PRIMARY KEY,
    project_id         BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id            BIGINT REFERENCES users (id) ON DELETE SET NULL,
    order_number       TEXT NOT NULL,
    retailcrm_order_id BIGINT,
    status             TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN
                           ('PENDING', 'CONFIRMED', 'PROCESSING', 'SHIPPED', 'DELIVERED',
                            'CANCELLED', 'REFUNDED')),
    retailcrm_status   TEXT,
    total_amount       NUMERIC NOT NULL DEFAULT 0,
    currency           TEXT,
    ordered_at         TIMESTAMPTZ,
    deleted_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orders_project_retailcrm_id_uq UNIQUE (project_id, retailcrm_order_id),
    CONSTRAINT orders_project_number_uq UNIQUE (project_id, order_number)
);
CREATE INDEX orders_user_idx ON orders (user_id) WHERE user_id IS NOT NULL;
