-- Which broker login published the request of each turn (its AMQP user-id, which RabbitMQ checks against the login):
-- the producer that asserted the turn's owner_id, for audit. Nullable: turns from before this was recorded have none.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE turns ADD COLUMN producer text CHECK (length(producer) <= 256);

RESET search_path;
RESET ROLE;
