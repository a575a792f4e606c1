-- Worker membership and partition leases: infrastructure state, no user data, so no owner column and no RLS.
-- The lease itself is a session-level advisory lock held by the owning worker (released by the server if the
-- worker dies); this table records the lease epoch that a turn's commit checks, so a worker that lost its
-- partition while a model call ran cannot commit.
SET ROLE workers_migrator;
SET search_path = workers;

CREATE TABLE worker_members (
    worker_id     text        PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 200),
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE partition_leases (
    partition    integer     PRIMARY KEY CHECK (partition >= 0),
    worker_id    text        NOT NULL,
    epoch        bigint      NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON worker_members, partition_leases TO workers_app;

RESET search_path;
RESET ROLE;
