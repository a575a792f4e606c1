-- Per-session model: the name of one of the models the deployment configures (Llm:Models:NAME on the workers), NULL
-- for the deployment's default. The name's syntax is checked here; whether the workers know it is checked per turn
-- (an unknown one fails that turn with invalid_request and names the ones there are).
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE sessions ADD COLUMN model text CHECK (model IS NULL OR model ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');

RESET search_path;
RESET ROLE;
