-- One login role per host, each granted only what that host uses; retention with a TTL no login role chooses.
-- workers_worker: the worker (turns, notes, parked requests, pool membership and leases, the retention sweep).
-- workers_notifier: the notifier (a user's sessions and their history; no turns written, no leases, no retention).
-- workers_app stays for installations that still log in with it; no host uses it any more.
-- Every migration run also re-asserts these roles' attributes (MigrationRunner), so a role later given SUPERUSER or
-- BYPASSRLS by hand is brought back; the hosts refuse to start with such a login anyway.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workers_worker') THEN
        CREATE ROLE workers_worker LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workers_notifier') THEN
        CREATE ROLE workers_notifier LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA workers TO workers_worker, workers_notifier;

SET ROLE workers_migrator;
SET search_path = workers;

-- The policies apply to every login role alike.
ALTER POLICY sessions_of_user ON sessions TO workers_app, workers_worker, workers_notifier;
ALTER POLICY turns_of_session ON turns TO workers_app, workers_worker, workers_notifier;
ALTER POLICY inbox_of_session ON inbox TO workers_app, workers_worker, workers_notifier;
ALTER POLICY notes_of_session ON session_notes TO workers_app, workers_worker, workers_notifier;
ALTER POLICY parked_of_session ON parked_requests TO workers_app, workers_worker, workers_notifier;

GRANT SELECT, INSERT, UPDATE ON sessions, turns, inbox, parked_requests TO workers_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON session_notes TO workers_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON worker_members, partition_leases TO workers_worker;

-- A user's sessions: create, list, rename, delete (children go by the owner foreign keys); history read only.
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions TO workers_notifier;
GRANT SELECT ON turns, session_summaries TO workers_notifier;

-- Deployment settings only the migrator writes (it owns the table and grants nothing on it).
CREATE TABLE settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO settings (key, value) VALUES ('session_idle_ttl', '30 days');

-- Retention: no argument, so no login role chooses what counts as idle; the TTL comes from settings (at least a
-- minute). Deletes across users and returns a count only.
CREATE FUNCTION delete_idle_sessions() RETURNS integer
    LANGUAGE sql SECURITY DEFINER SET search_path = workers, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM workers.sessions
        WHERE last_active_at < now() - greatest(
            coalesce((SELECT value::interval FROM workers.settings WHERE key = 'session_idle_ttl'), interval '30 days'),
            interval '1 minute')
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION delete_idle_sessions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION delete_idle_sessions() TO workers_worker;

-- The old form let its caller choose the interval: gone.
DROP FUNCTION delete_idle_sessions(interval);

RESET search_path;
RESET ROLE;
