-- workers_operator: the login of the notifier's admin API (the operator's view of the pool and of parked requests).
-- It reads the pool's membership and leases, which hold no user data, and reaches parked requests only through the
-- functions below: a list without the text, a replay that hands back one request's owner and text to publish, and
-- a removal. It reads no session, turn, note or inbox row itself; row-level security binds it like every login role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'workers_operator') THEN
        CREATE ROLE workers_operator LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA workers TO workers_operator;

SET ROLE workers_migrator;
SET search_path = workers;

GRANT SELECT ON worker_members, partition_leases TO workers_operator;

-- The functions run as the owner; FORCE applies to the owner too, so it gets exactly these policies: parked requests
-- across users, and deleting an inbox row (so a replayed request runs instead of being taken for a duplicate).
CREATE POLICY parked_for_operator ON parked_requests FOR ALL TO workers_migrator USING (true) WITH CHECK (true);
CREATE POLICY inbox_replay ON inbox FOR DELETE TO workers_migrator USING (true);
CREATE POLICY inbox_replay_read ON inbox FOR SELECT TO workers_migrator USING (true);

CREATE FUNCTION operator_parked()
    RETURNS TABLE (session_id uuid, request_id uuid, owner_id text, code text, reason text, attempts integer,
                   parked_at timestamptz, text_length integer)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = workers, pg_temp
AS $$
    SELECT p.session_id, p.request_id, p.owner_id, p.code, p.reason, p.attempts, p.parked_at, length(p.user_text)
    FROM workers.parked_requests p ORDER BY p.parked_at, p.request_id
$$;

-- The first half of a replay: the request's inbox row goes (it says 'failed'), and its owner and text come back to be
-- published under the same request id. The parked row stays until operator_remove_parked, after the publish was
-- confirmed, so a crash in between leaves it parked, to replay again.
CREATE FUNCTION operator_take_parked(p_session_id uuid, p_request_id uuid)
    RETURNS TABLE (owner_id text, user_text text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = workers, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT p.owner_id, p.user_text FROM workers.parked_requests p
                 WHERE p.session_id = p_session_id AND p.request_id = p_request_id;
    IF FOUND THEN
        DELETE FROM workers.inbox i WHERE i.session_id = p_session_id AND i.request_id = p_request_id;
    END IF;
END
$$;

CREATE FUNCTION operator_remove_parked(p_session_id uuid, p_request_id uuid) RETURNS boolean
    LANGUAGE sql SECURITY DEFINER SET search_path = workers, pg_temp
AS $$
    WITH gone AS (DELETE FROM workers.parked_requests p
                  WHERE p.session_id = p_session_id AND p.request_id = p_request_id RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone)
$$;

REVOKE ALL ON FUNCTION operator_parked(), operator_take_parked(uuid, uuid), operator_remove_parked(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION operator_parked(), operator_take_parked(uuid, uuid), operator_remove_parked(uuid, uuid) TO workers_operator;

RESET search_path;
RESET ROLE;
