#!/usr/bin/env bash
# Throwaway PostgreSQL + RabbitMQ for tests and the local demo, without Docker
# or systemd. Debian 12, run as root. Everything listens on 127.0.0.1 only.
#
#   compose/local/services.sh up       install if missing, start, wait until ready, print env
#   compose/local/services.sh up --ha  the production topology: 3 RabbitMQ nodes, PostgreSQL with automatic
#                                      failover, PgBouncer (compose/local/ha.sh; `status/env/down --ha`, `fault NAME`);
#                                      it may run beside the single-node services (other ports)
#   compose/local/services.sh status   exit 0 if both run, 3 otherwise
#   compose/local/services.sh env      KEY=VALUE lines for the apps/tests (exit 1 if not running)
#   compose/local/services.sh down     stop what `up` started (by pid); data is kept
#   compose/local/services.sh purge    down, then delete the data  (also: down --purge; with --ha only the HA topology's)
#
# Use the env in a shell:   set -a; source <(compose/local/services.sh env); set +a
# (values containing shell-special characters, e.g. the ';' of the connection
# string, are printed single-quoted, so `source`/`eval` work; plain values are not).
#
# Settings (environment):
#   WORKERS_LOCAL_DIR         data dir (default: <repo>/.local/services)
#   WORKERS_PG_PORT           PostgreSQL            (default 55432)
#   WORKERS_AMQP_PORT         AMQP                  (default 55672)
#   WORKERS_RABBIT_MGMT_PORT  management HTTP API   (default 55673)
#   WORKERS_RABBIT_DIST_PORT  Erlang distribution   (default 55674)
#   WORKERS_EPMD_PORT         Erlang port mapper    (default 55675)
# Two checkouts side by side: give the second one other ports. The RabbitMQ
# node name is derived from the AMQP port (workers-<port>@localhost).
# While anything of ours runs, the ports it was started with are pinned (in
# <data>/config.env) and the WORKERS_*_PORT variables are ignored until `down`.
#
# Credentials: PostgreSQL postgres/postgres (scram-sha-256 over TCP; trust on
# the unix socket in <data>/postgres/sock). RabbitMQ: one login per component,
# least privilege on vhost / (the regexes are src/Workers.Core/Messaging/
# BrokerPermissions.cs, repeated below: change both together):
#   workers           administrator, .* .* .*: setup (Workers.Migrator topology) and operations only
#   workers-producer  may only publish to workers.chat-requests (no configure, no read, no tag)
#   workers-worker    consumes the partition queues, publishes events
#   workers-notifier  publishes requests and control messages, reads the by-session events exchange
#   workers-monitor   management tag, ^$ ^$ ^$: reads queue depths for the notifier's admin page, never a message
# Their passwords are random, generated once into <data>/credentials.env (mode
# 600) and kept until `purge`. Guest is not created. `env` prints RabbitMq__*
# for the admin login and one URL per login (WORKERS_AMQP_URL_PRODUCER, _MONITOR,
# _WORKER, _NOTIFIER, _ADMIN); run.sh gives each host its own.
#
# By hand, RabbitMQ CLI against our node:
#   set -a; . <data>/rabbitmq/env.sh; set +a; /usr/lib/rabbitmq/bin/rabbitmqctl status
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
DATA="${WORKERS_LOCAL_DIR:-$REPO_ROOT/.local/services}"
case "$DATA" in /*) ;; *) DATA="$PWD/$DATA" ;; esac

RMQ_BIN=/usr/lib/rabbitmq/bin
R="$DATA/rabbitmq"
CONFIG_FILE="$DATA/config.env"
PG_USER=postgres
PG_PASSWORD=postgres
RMQ_USER=workers
RMQ_PASSWORD="" # from <data>/credentials.env (load_credentials)
CREDENTIALS_FILE="$DATA/credentials.env"
# login configure write read tags (space-separated) -- the same regexes as src/Workers.Core/Messaging/BrokerPermissions.cs
RMQ_LOGINS=(
    # user configure write read tags ('-': none, so no management access). workers-monitor only reads queue depths
    # through the management API (the notifier's admin page): it sees the queues of '/', never a message.
    "workers-monitor ^\$ ^\$ ^\$ management"
    "workers-producer ^\$ ^workers\\.chat-requests\$ ^\$ -"
    "workers-worker ^(workers\\.worker-control\\..*|workers\\.chat-control|workers\\.chat-events)\$ ^(workers\\.worker-control\\..*|workers\\.chat-events|amq\\.default)\$ ^(workers\\.worker-control\\..*|workers\\.chat-control|workers\\.chat-requests\\.p[0-9]+)\$ -"
    "workers-notifier ^(workers\\.notifier-events\\..*|workers\\.chat-events\\.by-session|workers\\.chat-requests|workers\\.chat-control)\$ ^(workers\\.notifier-events\\..*|workers\\.chat-requests|workers\\.chat-control)\$ ^(workers\\.notifier-events\\..*|workers\\.chat-events\\.by-session)\$ -"
)

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, runs PostgreSQL as the postgres user)"

# ---------------------------------------------------------------- configuration

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

# Ports from the environment (used when nothing of ours is running).
config_from_env() {
    PG_PORT="${WORKERS_PG_PORT:-55432}"
    AMQP_PORT="${WORKERS_AMQP_PORT:-55672}"
    MGMT_PORT="${WORKERS_RABBIT_MGMT_PORT:-55673}"
    DIST_PORT="${WORKERS_RABBIT_DIST_PORT:-55674}"
    EPMD_PORT="${WORKERS_EPMD_PORT:-55675}"
    local v
    for v in PG_PORT AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT; do
        valid_port "${!v}" || die "invalid port '${!v}' for $(port_var "$v")"
    done
    PG_ROOT=""
}

# Pinned config of the last `up` (the ports the running processes use).
load_config() {
    config_from_env
    if [ -f "$CONFIG_FILE" ]; then
        # shellcheck disable=SC1090
        . "$CONFIG_FILE"
    fi
    NODENAME="workers-${AMQP_PORT}@localhost"
    PG_DATA="${PG_ROOT:+$PG_ROOT/data}"
}

save_config() {
    mkdir -p "$DATA"
    {
        printf 'PG_PORT=%q\nAMQP_PORT=%q\nMGMT_PORT=%q\nDIST_PORT=%q\nEPMD_PORT=%q\nPG_ROOT=%q\n' \
            "$PG_PORT" "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT" "$PG_ROOT"
    } >"$CONFIG_FILE.tmp"
    mv -f "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

port_var() {
    case "$1" in
        PG_PORT) echo WORKERS_PG_PORT ;;
        AMQP_PORT) echo WORKERS_AMQP_PORT ;;
        MGMT_PORT) echo WORKERS_RABBIT_MGMT_PORT ;;
        DIST_PORT) echo WORKERS_RABBIT_DIST_PORT ;;
        EPMD_PORT) echo WORKERS_EPMD_PORT ;;
    esac
}

# The admin's random password, generated once and kept: nothing logs in with a well-known one (the component
# logins' are made by login_password below).
load_credentials() {
    if [ ! -s "$CREDENTIALS_FILE" ]; then
        mkdir -p "$DATA"
        (umask 077; printf 'RMQ_PASSWORD=%s\n' "$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')" >"$CREDENTIALS_FILE.tmp")
        mv -f "$CREDENTIALS_FILE.tmp" "$CREDENTIALS_FILE"
    fi
    chmod 600 "$CREDENTIALS_FILE"
    # shellcheck disable=SC1090
    . "$CREDENTIALS_FILE"
}

# ------------------------------------------------------------------- processes

# alive PID: exists and is not a zombie (the init of some sandboxes reaps late)
alive() {
    local st
    st="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# pid_is PID COMM: the pid is alive and is the program we expect (guards against pid reuse)
pid_is() {
    local pid="$1" comm="$2" c
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    c="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [ "$c" = "$comm" ]
}

read_pid() { [ -f "$1" ] && head -n1 "$1" 2>/dev/null | tr -dc '0-9' || true; }

pg_pid() {
    local pid
    [ -n "$PG_DATA" ] || return 1
    pid="$(read_pid "$PG_DATA/postmaster.pid")"
    pid_is "$pid" postgres || return 1
    echo "$pid"
}
rabbit_pid() { local pid; pid="$(read_pid "$R/rabbitmq.pid")"; pid_is "$pid" beam.smp || return 1; echo "$pid"; }
epmd_pid() { local pid; pid="$(read_pid "$R/epmd.pid")"; pid_is "$pid" epmd || return 1; echo "$pid"; }

port_in_use() { [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; }

# wait_gone PID SECONDS
wait_gone() {
    local pid="$1" n=$(($2 * 10))
    while [ "$n" -gt 0 ] && alive "$pid"; do sleep 0.1; n=$((n - 1)); done
    ! alive "$pid"
}

# ---------------------------------------------------------------- installation

find_pg_bin() {
    local d
    if [ -x /usr/lib/postgresql/15/bin/initdb ]; then echo /usr/lib/postgresql/15/bin; return 0; fi
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
POLICY_CREATED=""
restore_policy() {
    if [ -n "$POLICY_CREATED" ]; then rm -f "$POLICY"; POLICY_CREATED=""; fi
    if [ -n "$POLICY_BACKUP" ]; then mv -f "$POLICY_BACKUP" "$POLICY"; POLICY_BACKUP=""; fi
}

ensure_installed() { # ensure_installed [ha]: with "ha", the HA topology's packages too
    local pkgs=()
    find_pg_bin >/dev/null || pkgs+=(postgresql)
    if [ "${1:-}" = ha ]; then
        command -v pg_autoctl >/dev/null || pkgs+=(postgresql-15-auto-failover)
        command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || pkgs+=(pgbouncer)
    fi
    [ -x "$RMQ_BIN/rabbitmq-server" ] || pkgs+=(rabbitmq-server)
    command -v ss >/dev/null || pkgs+=(iproute2)
    command -v runuser >/dev/null || pkgs+=(util-linux)
    [ "${#pkgs[@]}" -gt 0 ] || return 0

    command -v apt-get >/dev/null || die "missing ${pkgs[*]} and no apt-get to install them"
    log "installing ${pkgs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' post-install from starting system services
    # (rabbitmq-server on 5672, the postgresql 'main' cluster on 5432).
    # one installer at a time on this machine (two checkouts running `up`)
    exec 8>/tmp/workers-services-install.lock
    flock -w 900 8 || die "another services.sh is installing packages"
    trap restore_policy EXIT
    trap 'exit 130' INT TERM HUP
    if [ -e "$POLICY" ]; then
        POLICY_BACKUP="$POLICY.workers-services-backup"
        mv -f "$POLICY" "$POLICY_BACKUP"
    fi
    POLICY_CREATED=1
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"

    local p need_update=""
    for p in "${pkgs[@]}"; do
        # (no `apt-cache | grep -q`: with pipefail, grep's early exit SIGPIPEs apt-cache)
        case "$(apt-cache policy "$p" 2>/dev/null || true)" in
            *"Candidate: "[0-9]*) ;;
            *) need_update=1 ;;
        esac
    done
    if [ -n "$need_update" ]; then
        log "apt-get update"
        apt-get update -qq </dev/null >&2 || die "apt-get update failed"
    fi
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${pkgs[@]}" </dev/null >&2 \
        || die "apt-get install ${pkgs[*]} failed"
    restore_policy
    trap - EXIT INT TERM HUP
    exec 8>&-

    # Belt and braces: if a system rabbitmq-server got started anyway, stop it.
    if pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then
        log "stopping the system rabbitmq-server that the package started"
        # (not invoke-rc.d: policy-rc.d may deny "stop" as well)
        timeout 60 /usr/sbin/rabbitmqctl -q stop >/dev/null 2>&1 \
            || /etc/init.d/rabbitmq-server stop >/dev/null 2>&1 || true
    fi
    find_pg_bin >/dev/null || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin after install"
    [ -x "$RMQ_BIN/rabbitmq-server" ] || die "$RMQ_BIN/rabbitmq-server not found after install"
}

# ------------------------------------------------------------------ PostgreSQL

as_pg() { (cd / && runuser -u postgres -- "$@"); }

# Where PostgreSQL's files go. Normally <data>/postgres. The postgres user must
# be able to traverse every parent directory; we do NOT chmod the parents of
# the checkout. If it cannot, fall back to /tmp/workers-services-<port>-<hash
# of the data dir>/postgres (per port and checkout; data there is still kept
# across down/up, but not across reboots). The choice is pinned in config.env.
choose_pg_root() {
    local want="$DATA/postgres" alt
    mkdir -p "$want"
    chown postgres:postgres "$want"
    chmod 700 "$want"
    if as_pg test -w "$want" -a -x "$want"; then
        PG_ROOT="$want"
        return 0
    fi
    alt="/tmp/workers-services-$PG_PORT-$(printf '%s' "$DATA" | cksum | cut -d' ' -f1)/postgres"
    log "postgres user cannot reach $want (a parent dir is not traversable); using $alt"
    rmdir "$want" 2>/dev/null || true
    mkdir -p "$alt"
    chown postgres:postgres "$alt" "$(dirname "$alt")"
    chmod 700 "$alt"
    as_pg test -w "$alt" -a -x "$alt" || die "postgres user cannot use $alt either"
    PG_ROOT="$alt"
}

# Is any live process still working in our data dir (postgres processes chdir there)?
pg_leftovers() {
    local d p
    for d in /proc/[0-9]*; do
        p="${d#/proc/}"
        [ "$(readlink "$d/cwd" 2>/dev/null)" = "$PG_DATA" ] && alive "$p" && return 0
    done
    return 1
}

pg_start() {
    local bin pid sock pwfile
    bin="$(find_pg_bin)" || die "PostgreSQL binaries not found"
    PG_DATA="$PG_ROOT/data"
    sock="$PG_ROOT/sock"
    # unix socket path limit is 107 bytes
    if [ $(( ${#sock} + 20 )) -gt 107 ]; then
        sock="/tmp/workers-pg-sock-$PG_PORT"
    fi
    mkdir -p "$sock"
    chown postgres:postgres "$sock"
    chmod 700 "$sock"

    if [ ! -s "$PG_DATA/PG_VERSION" ]; then
        log "postgres: initdb ($bin) in $PG_DATA"
        rm -rf "$PG_DATA"
        pwfile="$PG_ROOT/.pwfile"
        printf '%s\n' "$PG_PASSWORD" >"$pwfile"
        chown postgres:postgres "$pwfile"
        chmod 600 "$pwfile"
        if ! as_pg "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" -E UTF8 --locale=C.UTF-8 \
                --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" \
                >"$PG_ROOT/initdb.log" 2>&1; then
            rm -f "$pwfile"
            cat "$PG_ROOT/initdb.log" >&2
            die "initdb failed"
        fi
        rm -f "$pwfile"
        printf "\ninclude_if_exists = 'workers.conf'\n" >>"$PG_DATA/postgresql.conf"
    fi
    # Regenerated on each start (ports may change between runs).
    cat >"$PG_DATA/workers.conf" <<EOF
# written by compose/local/services.sh -- throwaway settings
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
EOF
    chown postgres:postgres "$PG_DATA/workers.conf"

    # After a crash (kill -9) the old postmaster may linger as a zombie for a
    # moment, and its orphaned children may still hold the shared memory;
    # pg_ctl would refuse to start until they are gone.
    local old i
    old="$(read_pid "$PG_DATA/postmaster.pid")"
    if [ -n "$old" ]; then
        for i in $(seq 1 100); do
            [ -d "/proc/$old" ] || break
            sleep 0.1
        done
        for i in $(seq 1 100); do
            pg_leftovers || break
            sleep 0.1
        done
    fi
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    if ! as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_ROOT/postgres.log" -w -t 60 start >/dev/null 2>"$PG_ROOT/pg_ctl.err" 9>&-; then
        cat "$PG_ROOT/pg_ctl.err" >&2 || true
        tail -n 20 "$PG_ROOT/postgres.log" >&2 || true
        die "PostgreSQL did not start (log: $PG_ROOT/postgres.log)"
    fi
}

pg_wait_ready() {
    local bin i
    bin="$(find_pg_bin)"
    for i in $(seq 1 300); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 \
            && PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$bin/psql" -X -q -At -w -h 127.0.0.1 -p "$PG_PORT" \
                -U "$PG_USER" -d postgres -c 'select 1' >/dev/null 2>&1; then
            log "postgres: ready (pid $(pg_pid), select 1 over TCP with password ok)"
            return 0
        fi
        pg_pid >/dev/null || { tail -n 20 "$PG_ROOT/postgres.log" >&2 || true; die "PostgreSQL exited (log: $PG_ROOT/postgres.log)"; }
        sleep 0.2
    done
    die "PostgreSQL on 127.0.0.1:$PG_PORT not ready after 60 s (log: $PG_ROOT/postgres.log)"
}

pg_stop() {
    local pid bin
    pid="$(pg_pid)" || { log "postgres: not running"; return 0; }
    bin="$(find_pg_bin)"
    log "postgres: stopping (pid $pid)"
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    if ! wait_gone "$pid" 5; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    fi
}

# -------------------------------------------------------------------- RabbitMQ

# Env for the broker and for every CLI call against it (the /usr/sbin wrappers
# are not used: as root they switch to the rabbitmq user and its cookie).
write_rabbit_files() {
    mkdir -p "$R/home" "$R/mnesia" "$R/log"
    chmod 700 "$R/home"
    if [ ! -s "$R/home/.erlang.cookie" ]; then
        (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$R/home/.erlang.cookie")
    fi
    chmod 600 "$R/home/.erlang.cookie"
    : >"$R/rabbitmq-env.conf" # replaces /etc/rabbitmq/rabbitmq-env.conf
    printf '[rabbitmq_management].\n' >"$R/enabled_plugins"
    cat >"$R/rabbitmq.conf" <<EOF
# written by compose/local/services.sh
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
loopback_users = none
# A request body is at most 256 KiB (the worker refuses bigger ones with too_large, naming the session); the broker
# refuses anything past 4 MiB outright, so no producer can make a worker hold megabytes.
max_message_size = 4194304
# created on first boot of an empty database (verified / repaired by services.sh)
default_vhost = /
default_user = $RMQ_USER
default_pass = $RMQ_PASSWORD
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = info
EOF
    local dist_ip='-kernel inet_dist_use_interface {127,0,0,1}'
    {
        printf 'export HOME=%q\n' "$R/home"
        printf 'export RABBITMQ_CONF_ENV_FILE=%q\n' "$R/rabbitmq-env.conf"
        printf 'export RABBITMQ_CONFIG_FILE=%q\n' "$R/rabbitmq.conf"
        printf 'export RABBITMQ_ADVANCED_CONFIG_FILE=%q\n' "$R/advanced.config"
        printf 'export RABBITMQ_ENABLED_PLUGINS_FILE=%q\n' "$R/enabled_plugins"
        printf 'export RABBITMQ_MNESIA_BASE=%q\n' "$R/mnesia"
        printf 'export RABBITMQ_LOG_BASE=%q\n' "$R/log"
        printf 'export RABBITMQ_PID_FILE=%q\n' "$R/rabbitmq.pid"
        printf 'export RABBITMQ_NODENAME=%q\n' "$NODENAME"
        printf 'export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1\n'
        printf 'export RABBITMQ_NODE_PORT=%q\n' "$AMQP_PORT"
        printf 'export RABBITMQ_DIST_PORT=%q\n' "$DIST_PORT"
        printf 'export ERL_EPMD_PORT=%q\n' "$EPMD_PORT"
        printf 'export ERL_EPMD_ADDRESS=127.0.0.1\n'
        printf 'export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=%q\n' "+S 2:2 +sbwt none +sbwtdcpu none +sbwtdio none $dist_ip"
        printf 'export RABBITMQ_CTL_ERL_ARGS=%q\n' "$dist_ip"
    } >"$R/env.sh"
}

rabbit_env() {
    # shellcheck disable=SC1091
    . "$R/env.sh"
}

# Run a RabbitMQ CLI tool against our node, in a subshell with our env.
rmq() {
    local tool="$1"; shift
    (rabbit_env; cd "$R" && timeout 120 "$RMQ_BIN/$tool" "$@" </dev/null)
}

epmd_start() {
    local pid epmd i
    if pid="$(epmd_pid)"; then return 0; fi
    epmd="$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | sort -V | tail -n1)"
    [ -x "$epmd" ] || die "epmd not found (erlang-base)"
    log "epmd: starting on 127.0.0.1:$EPMD_PORT"
    # Foreground epmd in the background: $! is epmd itself (no -daemon fork).
    ERL_EPMD_ADDRESS=127.0.0.1 setsid "$epmd" -address 127.0.0.1 -port "$EPMD_PORT" \
        </dev/null >"$R/log/epmd.log" 2>&1 9>&- &
    echo $! >"$R/epmd.pid"
    for i in $(seq 1 100); do
        port_in_use "$EPMD_PORT" && epmd_pid >/dev/null && return 0
        epmd_pid >/dev/null || { cat "$R/log/epmd.log" >&2; die "epmd exited"; }
        sleep 0.05
    done
    die "epmd did not listen on 127.0.0.1:$EPMD_PORT"
}

rabbit_start() {
    local i pid
    epmd_start
    rm -f "$R/rabbitmq.pid"
    log "rabbitmq: starting node $NODENAME (amqp 127.0.0.1:$AMQP_PORT, management 127.0.0.1:$MGMT_PORT)"
    (rabbit_env; cd "$R" && setsid "$RMQ_BIN/rabbitmq-server" -detached </dev/null >"$R/log/server.out" 2>&1 9>&-) \
        || { cat "$R/log/server.out" >&2; die "rabbitmq-server -detached failed"; }
    for i in $(seq 1 300); do
        pid="$(rabbit_pid)" && break
        sleep 0.1
    done
    [ -n "${pid:-}" ] || { tail -n 30 "$R/log/server.out" "$R/log/$NODENAME.log" >&2 2>/dev/null || true; die "RabbitMQ did not write its pid file"; }
}

rabbit_wait_ready() {
    local i start=$SECONDS
    # cheap wait for the AMQP listener first, then the real check
    while ! port_in_use "$AMQP_PORT"; do
        rabbit_pid >/dev/null || { tail -n 30 "$R/log/$NODENAME.log" >&2 2>/dev/null || true; die "RabbitMQ exited during boot (log: $R/log/$NODENAME.log)"; }
        [ $((SECONDS - start)) -lt 120 ] || die "RabbitMQ not listening on $AMQP_PORT after 120 s (log: $R/log/$NODENAME.log)"
        sleep 0.2
    done
    for i in $(seq 1 60); do
        if rmq rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
            log "rabbitmq: ready (pid $(rabbit_pid), port connectivity ok)"
            return 0
        fi
        rabbit_pid >/dev/null || die "RabbitMQ exited during boot (log: $R/log/$NODENAME.log)"
        sleep 0.5
    done
    die "RabbitMQ did not pass check_port_connectivity (log: $R/log/$NODENAME.log)"
}

# The user exists, has the administrator tag and .* permissions on '/'.
rabbit_user_ok() {
    local who perms
    who="$(curl -fsS -m 5 -u "$RMQ_USER:$RMQ_PASSWORD" "http://127.0.0.1:$MGMT_PORT/api/whoami" 2>/dev/null)" || return 1
    perms="$(curl -fsS -m 5 -u "$RMQ_USER:$RMQ_PASSWORD" "http://127.0.0.1:$MGMT_PORT/api/permissions/%2F/$RMQ_USER" 2>/dev/null)" || return 1
    grep -q '"administrator"' <<<"$who" \
        && grep -q '"configure":"\.\*"' <<<"$perms" && grep -q '"write":"\.\*"' <<<"$perms" && grep -q '"read":"\.\*"' <<<"$perms"
}

rabbit_ensure_user() {
    local i
    # the management listener may lag the AMQP one by a moment
    for i in $(seq 1 25); do
        if rabbit_user_ok; then log "rabbitmq: user $RMQ_USER ok (administrator, .* on /)"; return 0; fi
        sleep 0.2
    done
    log "rabbitmq: creating user $RMQ_USER"
    rmq rabbitmqctl -q add_user "$RMQ_USER" "$RMQ_PASSWORD" >/dev/null 2>&1 \
        || rmq rabbitmqctl -q change_password "$RMQ_USER" "$RMQ_PASSWORD" >/dev/null
    rmq rabbitmqctl -q set_user_tags "$RMQ_USER" administrator >/dev/null
    rmq rabbitmqctl -q set_permissions -p / "$RMQ_USER" '.*' '.*' '.*' >/dev/null
    for i in $(seq 1 25); do
        if rabbit_user_ok; then log "rabbitmq: user $RMQ_USER ok (administrator, .* on /)"; return 0; fi
        sleep 0.2
    done
    die "RabbitMQ user $RMQ_USER could not be verified via http://127.0.0.1:$MGMT_PORT/api/whoami"
}

# The component logins: created or reset through the management API (as the admin), each with exactly its
# permissions on / and its tags. Idempotent; run on every `up`.
rabbit_ensure_logins() {
    local entry user configure write read api="http://127.0.0.1:$MGMT_PORT/api"
    for entry in "${RMQ_LOGINS[@]}"; do
        IFS=' ' read -r user configure write read tags <<<"$entry"
        [ "$tags" = - ] && tags=""
        # JSON strings: each regex backslash doubled
        configure="${configure//\\/\\\\}" write="${write//\\/\\\\}" read="${read//\\/\\\\}"
        curl -fsS -m 10 -u "$RMQ_USER:$RMQ_PASSWORD" -X PUT -H 'content-type: application/json' \
            -d "{\"password\":\"$(login_password "$user")\",\"tags\":\"$tags\"}" "$api/users/$user" >/dev/null \
            || die "RabbitMQ login $user could not be created"
        curl -fsS -m 10 -u "$RMQ_USER:$RMQ_PASSWORD" -X PUT -H 'content-type: application/json' \
            -d "{\"configure\":\"$configure\",\"write\":\"$write\",\"read\":\"$read\"}" "$api/permissions/%2F/$user" >/dev/null \
            || die "RabbitMQ permissions of $user could not be set"
    done
    log "rabbitmq: logins workers-producer, workers-worker, workers-notifier, workers-monitor ok (least privilege on /)"
}

rabbit_stop() {
    local pid epid
    if pid="$(rabbit_pid)"; then
        log "rabbitmq: stopping node $NODENAME (pid $pid)"
        rmq rabbitmqctl -q stop >/dev/null 2>&1 || true
        if ! wait_gone "$pid" 30; then
            log "rabbitmq: still alive, SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            wait_gone "$pid" 15 || { log "rabbitmq: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
        fi
    else
        log "rabbitmq: not running"
    fi
    rm -f "$R/rabbitmq.pid"
    if epid="$(epmd_pid)"; then
        log "epmd: stopping (pid $epid)"
        kill -TERM "$epid" 2>/dev/null || true
        wait_gone "$epid" 5 || kill -KILL "$epid" 2>/dev/null || true
    fi
    rm -f "$R/epmd.pid"
}

# ------------------------------------------------------------------- commands

sq() { # print a value for `source`/`eval`: single-quote only if needed
    if [[ "$1" =~ ^[A-Za-z0-9_./:@+-]*$ ]]; then printf '%s' "$1"
    else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

# login_password NAME: a random password made once per data dir, so no login of ours has a well-known one.
login_password() {
    local file="$DATA/secrets/$1"
    if [ ! -s "$file" ]; then
        mkdir -p "$DATA/secrets"; chmod 700 "$DATA/secrets"
        (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$file")
    fi
    cat "$file"
}

print_env() {
    # The migrator runs as the superuser and sets each login role's password from its connection string: the worker
    # logs in as workers_worker (ConnectionStrings__PostgresWorker), the notifier as workers_notifier
    # (ConnectionStrings__PostgresNotifier); each host reads its own as ConnectionStrings__Postgres (run.sh maps them).
    # The notifier's admin API logs in as workers_operator (ConnectionStrings__PostgresOperator).
    # workers_app is the role of earlier versions. Database "workers" is created by the migrator on its first run.
    local db="${WORKERS_PG_DATABASE:-workers}"
    printf 'ConnectionStrings__PostgresAdmin=%s\n' "$(sq "Host=127.0.0.1;Port=$PG_PORT;Username=$PG_USER;Password=$PG_PASSWORD;Database=$db")"
    printf 'ConnectionStrings__Postgres=%s\n' "$(sq "Host=127.0.0.1;Port=$PG_PORT;Username=workers_app;Password=$(login_password pg-app);Database=$db")"
    printf 'ConnectionStrings__PostgresWorker=%s\n' "$(sq "Host=127.0.0.1;Port=$PG_PORT;Username=workers_worker;Password=$(login_password pg-worker);Database=$db")"
    printf 'ConnectionStrings__PostgresNotifier=%s\n' "$(sq "Host=127.0.0.1;Port=$PG_PORT;Username=workers_notifier;Password=$(login_password pg-notifier);Database=$db")"
    printf 'ConnectionStrings__PostgresOperator=%s\n' "$(sq "Host=127.0.0.1;Port=$PG_PORT;Username=workers_operator;Password=$(login_password pg-operator);Database=$db")"
    printf 'RabbitMq__Host=127.0.0.1\n'
    printf 'RabbitMq__Port=%s\n' "$AMQP_PORT"
    printf 'RabbitMq__Username=%s\n' "$(sq "$RMQ_USER")"
    printf 'RabbitMq__Password=%s\n' "$(sq "$RMQ_PASSWORD")"
    printf 'RabbitMq__ManagementPort=%s\n' "$MGMT_PORT"
    # The notifier's admin API: its database login above, and the broker's monitoring login for queue depths.
    printf 'Operator__ManagementUsername=workers-monitor\n'
    printf 'Operator__ManagementPassword=%s\n' "$(sq "$(login_password workers-monitor)")"
    # One URL per login (vhost / URL-encoded); run.sh gives each host its own, docs/producer uses the producer's.
    printf 'WORKERS_AMQP_URL_ADMIN=%s\n' "$(sq "amqp://$RMQ_USER:$RMQ_PASSWORD@127.0.0.1:$AMQP_PORT/%2F")"
    local component user
    for component in PRODUCER WORKER NOTIFIER MONITOR; do
        user="workers-${component,,}"
        printf 'WORKERS_AMQP_URL_%s=%s\n' "$component" "$(sq "amqp://$user:$(login_password "$user")@127.0.0.1:$AMQP_PORT/%2F")"
    done
}

# Serialises up/down of one data dir. The long-lived processes are started
# with fd 9 closed (9>&-) so they do not inherit and hold the lock.
lock() {
    mkdir -p "$DATA"
    exec 9>"$DATA/.lock"
    flock -w 300 9 || die "another services.sh holds $DATA/.lock"
}

cmd_up() {
    lock
    ensure_installed
    load_config
    load_credentials
    local pg_running="" rb_running="" var
    pg_pid >/dev/null && pg_running=1
    rabbit_pid >/dev/null && rb_running=1

    if [ -z "$pg_running" ] && [ -z "$rb_running" ]; then
        # nothing of ours runs: take the ports from the environment again
        local keep_root="$PG_ROOT"
        config_from_env
        NODENAME="workers-${AMQP_PORT}@localhost"
        PG_ROOT="$keep_root"
        local a b seen=" "
        for a in PG_PORT AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT; do
            case "$seen" in *" ${!a} "*)
                for b in PG_PORT AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT; do
                    [ "${!b}" = "${!a}" ] && die "$(port_var "$b") and $(port_var "$a") are both ${!a}"
                done ;;
            esac
            seen="$seen${!a} "
        done
    else
        for var in PG_PORT AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT; do
            local envv
            envv="$(port_var "$var")"
            if [ -n "${!envv:-}" ] && [ "${!envv}" != "${!var}" ]; then
                log "warning: $envv=${!envv} ignored, running services use ${!var} (run 'down' first)"
            fi
        done
    fi

    # Ports must be free unless our own process holds them.
    local check=()
    [ -n "$pg_running" ] || check+=(PG_PORT)
    if [ -z "$rb_running" ]; then
        check+=(AMQP_PORT MGMT_PORT DIST_PORT)
        epmd_pid >/dev/null || check+=(EPMD_PORT)
    fi
    for var in "${check[@]}"; do
        if port_in_use "${!var}"; then
            printf 'port %s (%s) is already in use\n' "${!var}" "$(port_var "$var")" >&2
            exit 1
        fi
    done

    if [ -z "$pg_running" ]; then
        [ -n "$PG_ROOT" ] && [ -d "$PG_ROOT" ] || choose_pg_root
        PG_DATA="$PG_ROOT/data"
    fi
    save_config
    mkdir -p "$R"

    if [ -n "$pg_running" ]; then
        log "postgres: already running (pid $(pg_pid))"
    else
        pg_start
    fi
    if [ -n "$rb_running" ]; then
        log "rabbitmq: already running (pid $(rabbit_pid))"
    else
        write_rabbit_files
        rabbit_start
    fi
    # both start in parallel-ish; now wait for each
    pg_wait_ready
    rabbit_wait_ready
    rabbit_ensure_user
    rabbit_ensure_logins
    print_env
}

cmd_status() {
    load_config
    local rc=0 pid
    if pid="$(pg_pid)"; then echo "postgres: running (pid $pid) 127.0.0.1:$PG_PORT data $PG_DATA"
    else echo "postgres: stopped"; rc=3; fi
    if pid="$(rabbit_pid)"; then echo "rabbitmq: running (pid $pid) node $NODENAME amqp 127.0.0.1:$AMQP_PORT management 127.0.0.1:$MGMT_PORT"
    else echo "rabbitmq: stopped"; rc=3; fi
    if pid="$(epmd_pid)"; then echo "epmd: running (pid $pid) 127.0.0.1:$EPMD_PORT"
    else echo "epmd: stopped"; fi
    return "$rc"
}

cmd_env() {
    load_config
    load_credentials
    pg_pid >/dev/null && rabbit_pid >/dev/null \
        || die "services are not running (run: $0 up)"
    print_env
}

cmd_down() {
    lock
    load_config
    pg_stop
    rabbit_stop
    log "down (data kept in $DATA)"
}

cmd_purge() {
    cmd_down
    load_config
    if [ -n "$PG_ROOT" ] && [ "$PG_ROOT" != "$DATA/postgres" ] && [ -d "$PG_ROOT" ]; then
        rm -rf "$(dirname "$PG_ROOT")"
    fi
    rm -rf "$DATA"
    log "purged $DATA"
}

# shellcheck source=compose/local/ha.sh
. "$SCRIPT_DIR/ha.sh"

# Both topologies may run side by side (their ports differ). A command acts on the single-node services unless it
# says --ha, or only the HA topology runs.
single_runs() { ( load_config; pg_pid >/dev/null || rabbit_pid >/dev/null ); }
# `purge --ha` deletes the HA topology only; a plain `purge` deletes both.
purge_topologies() {
    if [ -f "$HA_CONFIG" ]; then lock; cmd_ha_purge; exec 9>&-; fi
    [ "${2:-}" = "--ha" ] || [ "${3:-}" = "--ha" ] || cmd_purge
}
wants_ha() { [ "${2:-}" = "--ha" ] || [ "${3:-}" = "--ha" ] || { ! single_runs && ha_mode; }; }
case "${1:-}" in
    up) if [ "${2:-}" = "--ha" ]; then cmd_ha_up; else cmd_up; fi ;;
    status) if wants_ha "$@"; then cmd_ha_status; else cmd_status; fi ;;
    env) if wants_ha "$@"; then cmd_ha_env; else cmd_env; fi ;;
    down) if [ "${2:-}" = "--purge" ] || [ "${3:-}" = "--purge" ]; then purge_topologies "$@"
          elif wants_ha "$@"; then lock; cmd_ha_down; else cmd_down; fi ;;
    purge) purge_topologies "$@" ;;
    _follow-bouncers) bouncer_follow ;; # internal: the loop follower_start runs in the background
    fault) ha_mode || die "faults need the HA topology (up --ha)"; cmd_ha_fault "${2:-}" ;;
    *) echo "usage: $0 up [--ha] | down [--ha] [--purge] | purge | status [--ha] | env [--ha] | fault rabbit-leader|rabbit-restart|rabbit-block|rabbit-unblock|pg-primary|pg-restart|pgbouncer" >&2; exit 2 ;;
esac
