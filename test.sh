#!/usr/bin/env bash
# Runs every test on a fresh Debian machine: starts throwaway PostgreSQL and RabbitMQ (installing them when
# missing) unless connection settings are already in the environment, runs the suite, stops what it started,
# and ends with one line "N passed, N failed, N skipped" counted from the TRX results.
# `./test.sh --ha` runs only the HA topology's fault suite (with WORKERS_HA_LONG=1, its long runs).
set -euo pipefail
cd "$(dirname "$0")"
only_ha=""
[ "${1:-}" = "--ha" ] && only_ha=yes
results="$PWD/TestResults"
rm -rf "$results"
started=""
if [ -z "${ConnectionStrings__PostgresAdmin:-}" ] || [ -z "${RabbitMq__Host:-}" ]; then
  settings="$(bash compose/local/services.sh up)"
  started=yes
  set -a
  eval "$settings"
  set +a
fi
ha_started=""
stop() {
  if [ -n "$ha_started" ]; then ha_started=""; bash compose/local/services.sh down --ha >&2 || true; fi
  if [ -n "$started" ]; then started=""; bash compose/local/services.sh down >&2 || true; fi
}
trap stop EXIT
# The chat page's browser test drives Debian's Chromium (a test tool's own browser download cannot work here).
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium (apt-get)" >&2
  case "$(DEBIAN_FRONTEND=noninteractive apt-cache policy chromium 2>/dev/null || true)" in
    *"Candidate: "[0-9]*) ;;
    *) apt-get update -qq </dev/null >&2 || true ;;
  esac
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium \
    </dev/null >&2 || echo "test.sh: could not install chromium; the browser test will fail" >&2
fi

status=0
dotnet build Workers.sln -c Release -warnaserror --nologo -v q || status=$?
if [ "$status" -eq 0 ]; then
  # Everything but the fault suite of the HA topology, which runs next on its own: its faults and timings are not
  # disturbed by the rest, nor the rest by its nine extra servers (2 cores).
  if [ -z "$only_ha" ]; then
    dotnet test Workers.sln -c Release --no-build --nologo --filter "FullyQualifiedName!~Workers.Tests.HighAvailability" \
      --logger "trx;LogFilePrefix=results" --logger "console;verbosity=normal" \
      --results-directory "$results" -- xUnit.StopOnFail=false || status=$?
  fi

  # The HA topology (services.sh up --ha) unless WORKERS_HA_ENV names one already running; WORKERS_TEST_HA=0 leaves
  # these tests out (they then report themselves skipped).
  if [ "${WORKERS_TEST_HA:-1}" != 0 ]; then
    if [ -z "${WORKERS_HA_ENV:-}" ]; then
      mkdir -p .local
      WORKERS_HA_ENV="$PWD/.local/ha-test.env"
      ha_started=yes
      # Its data is the tests' own: a formation that cannot come back (a standby left on another timeline after many
      # failovers, seen here once) is started afresh rather than failing every test.
      bash compose/local/services.sh up --ha >"$WORKERS_HA_ENV" \
        || { echo "test.sh: the HA topology did not start; starting it afresh (services.sh purge --ha)" >&2
             bash compose/local/services.sh down --ha >&2 || true
             bash compose/local/services.sh purge --ha >&2 && bash compose/local/services.sh up --ha >"$WORKERS_HA_ENV"; } \
        || { echo "test.sh: the HA topology did not start (compose/local/services.sh up --ha); its tests fail" >&2; rm -f "$WORKERS_HA_ENV"; }
    fi
    export WORKERS_HA_ENV WORKERS_HA_REQUIRED=1
    dotnet test tests/Workers.Tests -c Release --no-build --nologo --filter "FullyQualifiedName~Workers.Tests.HighAvailability" \
      --logger "trx;LogFilePrefix=ha" --logger "console;verbosity=normal" \
      --results-directory "$results" -- xUnit.StopOnFail=false || status=$?
  fi
fi

stop
# Count from the TRX files: <Counters total=".." executed=".." passed=".." failed=".." ... notExecuted=".." />
count() {
  cat "$results"/*.trx 2>/dev/null | awk -v key="$1" '
    { while (match($0, key "=\"[0-9]+\"")) { v = substr($0, RSTART + length(key) + 2, RLENGTH - length(key) - 3); s += v; $0 = substr($0, RSTART + RLENGTH) } }
    END { print s + 0 }' || echo 0
}
# A failing test's name and the first lines of its message, last before the count: a log cut to its tail still shows them.
failures() {
  cat "$results"/*.trx 2>/dev/null | awk '
    /<UnitTestResult / && /outcome="(Failed|Error|Timeout)"/ { if (match($0, /testName="[^"]*"/)) { name = substr($0, RSTART + 10, RLENGTH - 11); print "FAILED " name; grab = 1; lines = 0 } }
    grab && /<Message>/ { sub(/.*<Message>/, ""); inmsg = 1 }
    grab && inmsg { line = $0; sub(/<\/Message>.*/, "", line); if (lines < 6) print "    " line; lines++; if ($0 ~ /<\/Message>/) { inmsg = 0; grab = 0 } }
  ' || true
}
failures
passed=$(count passed); failed=$(count failed); errors=$(count error); timeouts=$(count timeout)
# xUnit's skipped tests are neither executed nor counted as notExecuted in the TRX counters: total - executed.
skipped=$(( $(count total) - $(count executed) ))
failed=$(( ${failed:-0} + ${errors:-0} + ${timeouts:-0} ))
echo "${passed:-0} passed, ${failed} failed, ${skipped:-0} skipped"
if [ "${passed:-0}" -eq 0 ] || [ "$failed" -ne 0 ]; then status=1; fi
exit "$status"
