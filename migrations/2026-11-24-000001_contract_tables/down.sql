DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS retailcrm_integrations;
-- Drop `projects` only when up.sql created it (the platform's own table is never dropped).
DO $$
BEGIN
    IF to_regclass('projects') IS NOT NULL
       AND obj_description(to_regclass('projects'), 'pg_class')
           = 'created by retailcrm-sync (absent before)' THEN
        DROP TABLE projects;
    END IF;
END
$$;
