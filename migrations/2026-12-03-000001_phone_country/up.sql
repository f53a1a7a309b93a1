-- Country in which an integration's phone numbers written without a country code are read
-- (ISO 3166 alpha-2, upper case, e.g. KZ). NULL: the RetailCRM account's country (the default
-- store's `countryIso`), else RU. Nullable and without a default, so the platform's existing
-- writes of this table are unaffected.
ALTER TABLE retailcrm_integrations ADD COLUMN default_phone_country TEXT
    CONSTRAINT retailcrm_integrations_phone_country_ck
    CHECK (default_phone_country ~ '^[A-Z]{2}$');
