-- Per-session settings: the system prompt and the sampling temperature a session's turns use, NULL for the
-- deployment's. Set at creation or later (notifier: REST and hub; producers: fields of the request), read by the worker
-- in the turn's first transaction. Under the sessions table's row-level security like the rest of the row.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE sessions ADD COLUMN system_prompt text CHECK (system_prompt IS NULL OR length(system_prompt) BETWEEN 1 AND 8000);
ALTER TABLE sessions ADD COLUMN temperature real CHECK (temperature IS NULL OR temperature BETWEEN 0 AND 2);

RESET search_path;
RESET ROLE;
