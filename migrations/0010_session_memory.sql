-- The agent's memory of a session beyond its model's window: a stored summary of the older turns, under the session's
-- row-level security like its turns, gone with the session. Written by the worker with a turn's commit (in the
-- session's lane), so it is computed once and only moves forward.
-- turns.tokens: a turn's message and reply in the model's tokens, counted at its commit so the history's size is a sum.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE turns ADD COLUMN tokens integer CHECK (tokens >= 0);

CREATE TABLE session_memory (
    session_id    uuid        PRIMARY KEY,
    owner_id      text        NOT NULL,
    -- The summary covers the session's turns 1 to this one; the turns after it go to the model as they were.
    through_turn  bigint      NOT NULL CHECK (through_turn >= 1),
    summary       text        NOT NULL CHECK (length(summary) <= 400000),
    tokens        integer     NOT NULL CHECK (tokens >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, owner_id) REFERENCES sessions (id, owner_id) ON DELETE CASCADE
);
CREATE INDEX session_memory_owner_idx ON session_memory (owner_id);

ALTER TABLE session_memory ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_memory FORCE ROW LEVEL SECURITY;

CREATE POLICY memory_of_session ON session_memory TO workers_app, workers_worker, workers_notifier
    USING      (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid))
    WITH CHECK (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid));

GRANT SELECT, INSERT, UPDATE ON session_memory TO workers_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON session_memory TO workers_app;

RESET search_path;
RESET ROLE;
