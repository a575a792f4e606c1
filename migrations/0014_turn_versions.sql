-- Regenerate and edit: a turn that replaces the session's last one is a new turn (the next turn_no, so the counter,
-- the inbox and the fence work as for any turn); the replaced turn stays, marked with the turn_no of the version that
-- superseded it. History, replay and the model's prompt read only turns nobody superseded. Under the turns table's
-- row-level security like the rest of the row.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE turns ADD COLUMN superseded_by bigint CHECK (superseded_by IS NULL OR superseded_by > turn_no);

RESET search_path;
RESET ROLE;
