-- The SHA-256 (lower-case hex) of the project's webhook secret: RetailCRM triggers call
-- POST /webhooks/retailcrm/{project_id}?token=SECRET and the daemon compares the hash of what
-- it gets with this one in constant time. Only the hash is stored. NULL: no webhook (calls are
-- refused with 401). Nullable, so the platform's existing writes of this table are unaffected.
ALTER TABLE retailcrm_integrations ADD COLUMN webhook_token_sha256 TEXT
    CONSTRAINT retailcrm_integrations_webhook_token_ck
    CHECK (webhook_token_sha256 ~ '^[0-9a-f]{64}$');
