#!/usr/bin/env bash
# Runs the whole system on its local default: PostgreSQL and RabbitMQ on loopback (installed when missing),
# migrations and the broker topology (admin logins), ${WORKERS_COUNT:-2} worker processes and one notifier on http://127.0.0.1:5080,
# each with its own broker login; then it plays a short demo in the terminal (two users chatting at once, each in their
# own session) and keeps running for the chat page. Ctrl-C stops it all.
# WORKERS_KEEP_SERVICES=1 leaves PostgreSQL and RabbitMQ running afterwards; WORKERS_DEMO=0 skips the demo.
set -euo pipefail
cd "$(dirname "$0")"
settings="$(bash compose/local/services.sh up)"
set -a
eval "$settings"
set +a
export DOTNET_ENVIRONMENT=${DOTNET_ENVIRONMENT:-Development} ASPNETCORE_ENVIRONMENT=${ASPNETCORE_ENVIRONMENT:-Development}

pids=()
stop() {
  trap - INT TERM EXIT
  echo "run: stopping ${#pids[@]} processes" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${WORKERS_KEEP_SERVICES:-0}" != 1 ]; then bash compose/local/services.sh down >&2 || true; fi
}
trap stop INT TERM EXIT

echo "run: building (the first build restores NuGet and npm packages: a few minutes)" >&2
dotnet build Workers.sln -c Release --nologo -v q -clp:NoSummary
out=bin/Release/net10.0
# Setup, with the admin logins (RabbitMq__* and ConnectionStrings__PostgresAdmin): the schema, then the broker topology.
dotnet "src/Workers.Migrator/$out/Workers.Migrator.dll"
dotnet "src/Workers.Migrator/$out/Workers.Migrator.dll" topology
# Each host logs in to the broker as its own component (least privilege), from its URL amqp://user:pass@host:port/vhost.
# (`env` execs the host, so $! is the host itself and Ctrl-C's SIGTERM reaches it.)
login() { local cred="${1#amqp://}"; cred="${cred%%@*}"; printf '%s\n' "RabbitMq__Username=${cred%%:*}" "RabbitMq__Password=${cred#*:}"; }
mapfile -t worker_login < <(login "$WORKERS_AMQP_URL_WORKER")
mapfile -t notifier_login < <(login "$WORKERS_AMQP_URL_NOTIFIER")
for i in $(seq 1 "${WORKERS_COUNT:-2}"); do
  env "${worker_login[@]}" ConnectionStrings__Postgres="$ConnectionStrings__PostgresWorker" \
    dotnet "src/Workers.Worker/$out/Workers.Worker.dll" --Workers:WorkerId="worker-$i" &
  pids+=($!)
done
# The admin page (/admin.html) logs in as workers_operator and reads queue depths as workers-monitor (management tag,
# no permission to read a message): ConnectionStrings__PostgresOperator and Operator__* from services.sh env.
env "${notifier_login[@]}" ConnectionStrings__Postgres="$ConnectionStrings__PostgresNotifier" \
  dotnet "src/Workers.Notifier/$out/Workers.Notifier.dll" &
pids+=($!)
echo "run: ${WORKERS_COUNT:-2} workers and a notifier are starting" >&2
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null http://127.0.0.1:5080/health/ready 2>/dev/null && break
  sleep 0.5
done
cat >&2 <<'TEXT'

  The chat page: http://127.0.0.1:5080
  Sign in with any user id (development tokens); a second browser window as another user shows that neither sees
  the other's chats. The operator's page: http://127.0.0.1:5080/admin.html (development sign-in as an admin).
  Traces, metrics and health: docs/operations.md. Ctrl-C stops everything.
TEXT
if [ "${WORKERS_DEMO:-1}" != 0 ]; then
  NODE_PATH=src/Workers.Notifier/ChatPage/node_modules node compose/local/demo.js http://127.0.0.1:5080 \
    || echo "run: the demo failed (above); the system keeps running" >&2
fi
echo "run: running; Ctrl-C stops" >&2
wait -n "${pids[@]}" || true
