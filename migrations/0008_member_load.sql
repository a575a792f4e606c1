-- What each worker is doing, renewed with its heartbeat, for the operator's view of the pool (Workers.Migrator pool):
-- sessions with a lane in it (a turn running or about to) and requests waiting behind them.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE worker_members
    ADD COLUMN lanes   integer NOT NULL DEFAULT 0 CHECK (lanes >= 0),
    ADD COLUMN waiting integer NOT NULL DEFAULT 0 CHECK (waiting >= 0);

RESET search_path;
RESET ROLE;
