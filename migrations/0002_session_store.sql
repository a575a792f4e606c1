-- Sessions and their history, with row-level security as the boundary between users.
-- Policies read the caller from transaction-local settings (set_config(..., true)); NULLIF turns the '' that a
-- pooled connection reads after such a transaction into NULL, so "no context" matches no row instead of erroring.
SET ROLE workers_migrator;
SET search_path = workers;

CREATE TABLE sessions (
    id              uuid        PRIMARY KEY,
    owner_id        text        NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 128),
    title           text        NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_active_at  timestamptz NOT NULL DEFAULT now(),
    -- Fencing counter: committed turns. A turn commits only if it still reads the value it started from.
    turn_seq        bigint      NOT NULL DEFAULT 0,
    -- Highest reply-event number handed out; each turn attempt reserves a block above it.
    event_seq       bigint      NOT NULL DEFAULT 0,
    -- Target of the composite foreign keys below: a child row's owner must be its session's owner.
    UNIQUE (id, owner_id)
);
CREATE INDEX sessions_owner_idx ON sessions (owner_id, last_active_at DESC);
CREATE INDEX sessions_idle_idx ON sessions (last_active_at);

CREATE TABLE turns (
    session_id         uuid        NOT NULL,
    turn_no            bigint      NOT NULL,
    owner_id           text        NOT NULL,
    request_id         uuid        NOT NULL,
    user_text          text        NOT NULL,
    reply_text         text        NOT NULL,
    status             text        NOT NULL CHECK (status IN ('complete', 'cancelled', 'failed')),
    error_code         text,
    prompt_tokens      integer     NOT NULL DEFAULT 0,
    completion_tokens  integer     NOT NULL DEFAULT 0,
    first_seq          bigint      NOT NULL,
    last_seq           bigint      NOT NULL,
    started_at         timestamptz NOT NULL,
    completed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, turn_no),
    FOREIGN KEY (session_id, owner_id) REFERENCES sessions (id, owner_id) ON DELETE CASCADE
);
CREATE INDEX turns_owner_idx ON turns (owner_id);
CREATE INDEX turns_last_seq_idx ON turns (session_id, last_seq);

-- Requests already processed, keyed by the producer's requestId; written in the turn's commit transaction.
CREATE TABLE inbox (
    session_id  uuid        NOT NULL,
    request_id  uuid        NOT NULL,
    owner_id    text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('started', 'complete', 'cancelled', 'failed')),
    attempts    integer     NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, request_id),
    FOREIGN KEY (session_id, owner_id) REFERENCES sessions (id, owner_id) ON DELETE CASCADE
);
CREATE INDEX inbox_owner_idx ON inbox (owner_id);

-- Tool data: what the agent was asked to remember in this session.
CREATE TABLE session_notes (
    session_id  uuid        NOT NULL,
    key         text        NOT NULL CHECK (length(key) BETWEEN 1 AND 100),
    owner_id    text        NOT NULL,
    value       text        NOT NULL CHECK (length(value) <= 4000),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, key),
    FOREIGN KEY (session_id, owner_id) REFERENCES sessions (id, owner_id) ON DELETE CASCADE
);
CREATE INDEX session_notes_owner_idx ON session_notes (owner_id);

ALTER TABLE sessions      ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions      FORCE ROW LEVEL SECURITY;
ALTER TABLE turns         ENABLE ROW LEVEL SECURITY;
ALTER TABLE turns         FORCE ROW LEVEL SECURITY;
ALTER TABLE inbox         ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbox         FORCE ROW LEVEL SECURITY;
ALTER TABLE session_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_notes FORCE ROW LEVEL SECURITY;

-- The sub-selects make each setting an InitPlan, evaluated once per statement instead of once per row.
CREATE POLICY sessions_of_user ON sessions TO workers_app
    USING      (owner_id = (SELECT NULLIF(current_setting('app.user_id', true), '')))
    WITH CHECK (owner_id = (SELECT NULLIF(current_setting('app.user_id', true), '')));

CREATE POLICY turns_of_session ON turns TO workers_app
    USING      (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid))
    WITH CHECK (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid));

CREATE POLICY inbox_of_session ON inbox TO workers_app
    USING      (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid))
    WITH CHECK (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid));

CREATE POLICY notes_of_session ON session_notes TO workers_app
    USING      (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid))
    WITH CHECK (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid));

-- Retention runs as the owner through delete_idle_sessions below; FORCE applies to the owner too, so it
-- needs its own policy. No login role is a member of workers_migrator except the migrator's admin.
CREATE POLICY sessions_retention ON sessions FOR ALL TO workers_migrator USING (true) WITH CHECK (true);

-- A view over user data runs with the caller's rights, so the caller's policies apply.
CREATE VIEW session_summaries WITH (security_invoker = true) AS
    SELECT s.id, s.owner_id, s.title, s.created_at, s.last_active_at, s.turn_seq AS turns
    FROM sessions s;

-- Deletes sessions idle for longer than the given interval (children go by cascade) and returns how many.
-- Returns a count only: it can delete across users but cannot show anyone's rows.
CREATE FUNCTION delete_idle_sessions(idle interval) RETURNS integer
    LANGUAGE sql SECURITY DEFINER SET search_path = workers, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM workers.sessions
        WHERE last_active_at < now() - greatest(idle, interval '1 minute')
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION delete_idle_sessions(interval) FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, turns, inbox, session_notes TO workers_app;
GRANT SELECT ON session_summaries TO workers_app;
GRANT EXECUTE ON FUNCTION delete_idle_sessions(interval) TO workers_app;

RESET search_path;
RESET ROLE;
