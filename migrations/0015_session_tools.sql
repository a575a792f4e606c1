-- Tools from MCP servers. A session names the servers whose tools its turns offer the model (NULL: the deployment's
-- default set; an empty array: none, the built-in notes tool only). The names' syntax is checked here; whether the
-- workers have such a server is checked per turn (an unknown one fails that turn with invalid_request).
-- A turn keeps the tool calls its model made, each with its arguments and its result as the model saw it (already
-- capped), so later turns' prompts replay them exactly. Both are columns of rows already under row-level security.
SET ROLE workers_migrator;
SET search_path = workers;

ALTER TABLE sessions ADD COLUMN tools text[] CHECK (tools IS NULL OR (cardinality(tools) <= 16
    AND array_to_string(tools, ',') ~ '^([A-Za-z][A-Za-z0-9_]{0,31}(,|$))*$'));
ALTER TABLE turns ADD COLUMN tool_calls jsonb CHECK (tool_calls IS NULL OR jsonb_typeof(tool_calls) = 'array');

RESET search_path;
RESET ROLE;
