-- A member also holds a session-level advisory lock on lock_key while it lives. The server drops it the moment the
-- member's connection dies, so the others see a crashed worker at their next heartbeat instead of after the timeout.
SET ROLE workers_migrator;

ALTER TABLE workers.worker_members ADD COLUMN lock_key integer NOT NULL DEFAULT 0;

RESET ROLE;
