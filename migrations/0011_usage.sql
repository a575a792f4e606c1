-- Usage and budgets. Each turn records which provider and model answered, its cached prompt tokens and its cost (in
-- micro-dollars, from the deployment's price table). user_usage sums a user's turns per UTC day, written with each
-- turn's commit; usage_reservations holds what a running turn may still spend, so one user's sessions running at
-- once on different workers cannot together pass a budget (reserve before the model call, settle at commit).
-- Both are per user, not per session: their policy checks the owner only.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE turns ADD COLUMN provider text;
ALTER TABLE turns ADD COLUMN model text;
ALTER TABLE turns ADD COLUMN cached_tokens integer NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN cost_micros bigint NOT NULL DEFAULT 0;

CREATE TABLE user_usage (
    owner_id           text    NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 128),
    day                date    NOT NULL,
    turns              integer NOT NULL DEFAULT 0,
    prompt_tokens      bigint  NOT NULL DEFAULT 0,
    completion_tokens  bigint  NOT NULL DEFAULT 0,
    cached_tokens      bigint  NOT NULL DEFAULT 0,
    cost_micros        bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_id, day)
);

-- Keyed like the inbox (a request id is the producer's and unique only within its session) and by owner, so one
-- user's reservation can neither replace nor release another's.
CREATE TABLE usage_reservations (
    owner_id     text        NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 128),
    session_id   uuid        NOT NULL,
    request_id   uuid        NOT NULL,
    tokens       bigint      NOT NULL CHECK (tokens >= 0),
    cost_micros  bigint      NOT NULL CHECK (cost_micros >= 0),
    reserved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, session_id, request_id)
);
CREATE INDEX usage_reservations_owner_idx ON usage_reservations (owner_id, reserved_at);

ALTER TABLE user_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_usage FORCE ROW LEVEL SECURITY;
ALTER TABLE usage_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_reservations FORCE ROW LEVEL SECURITY;

CREATE POLICY usage_of_user ON user_usage TO workers_app, workers_worker, workers_notifier
    USING      (owner_id = (SELECT NULLIF(current_setting('app.user_id', true), '')))
    WITH CHECK (owner_id = (SELECT NULLIF(current_setting('app.user_id', true), '')));
CREATE POLICY reservations_of_user ON usage_reservations TO workers_app, workers_worker, workers_notifier
    USING      (owner_id = (SELECT NULLIF(current_setting('app.user_id', true), '')))
    WITH CHECK (owner_id = (SELECT NULLIF(current_setting('app.user_id', true), '')));

GRANT SELECT, INSERT, UPDATE ON user_usage TO workers_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON usage_reservations TO workers_worker;
GRANT SELECT ON user_usage TO workers_notifier;
GRANT SELECT, INSERT, UPDATE, DELETE ON user_usage, usage_reservations TO workers_app;

RESET search_path;
RESET ROLE;
