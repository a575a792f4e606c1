-- Requests set aside after failing (parked), with their text, for an operator to look at. Under row-level security
-- like every user table, and gone with their session: the error queue carries only ids and the reason, so no
-- user's text outlives the deletion of the chat it belongs to.
SET ROLE workers_migrator;
SET search_path = workers;

CREATE TABLE parked_requests (
    session_id  uuid        NOT NULL,
    request_id  uuid        NOT NULL,
    owner_id    text        NOT NULL,
    user_text   text        NOT NULL,
    code        text        NOT NULL,
    reason      text        NOT NULL CHECK (length(reason) <= 500),
    attempts    integer     NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, request_id),
    FOREIGN KEY (session_id, owner_id) REFERENCES sessions (id, owner_id) ON DELETE CASCADE
);
CREATE INDEX parked_requests_owner_idx ON parked_requests (owner_id);

ALTER TABLE parked_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE parked_requests FORCE ROW LEVEL SECURITY;

CREATE POLICY parked_of_session ON parked_requests TO workers_app
    USING      (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid))
    WITH CHECK (owner_id   = (SELECT NULLIF(current_setting('app.user_id', true), ''))
            AND session_id = (SELECT NULLIF(current_setting('app.session_id', true), '')::uuid));

GRANT SELECT, INSERT, UPDATE, DELETE ON parked_requests TO workers_app;

RESET search_path;
RESET ROLE;
