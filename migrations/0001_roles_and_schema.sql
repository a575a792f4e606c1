-- Bootstrap, run by the migrator's admin connection (a superuser or a role with CREATEROLE).
-- workers_migrator owns every object; nobody logs in as it, the migrator switches to it with SET ROLE.
-- workers_app is what the worker and notifier log in as: it owns nothing and cannot bypass row-level security.
-- Roles are cluster-wide, so this file tolerates roles that another database of the same cluster created.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workers_migrator') THEN
        CREATE ROLE workers_migrator NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workers_app') THEN
        CREATE ROLE workers_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

-- The admin must be able to SET ROLE workers_migrator (a superuser always can).
GRANT workers_migrator TO CURRENT_USER;

CREATE SCHEMA IF NOT EXISTS workers AUTHORIZATION workers_migrator;
REVOKE ALL ON SCHEMA workers FROM PUBLIC;
GRANT USAGE ON SCHEMA workers TO workers_app;
