# The production topology on one machine, for services.sh (sourced by it: it uses its helpers and globals).
#
#   services.sh up --ha       a 3-node RabbitMQ cluster, PostgreSQL with automatic failover (pg_auto_failover:
#                             a monitor, a primary and two synchronous-quorum standbys) and one PgBouncer per
#                             PostgreSQL node; prints the env (multi-host where it applies)
#   services.sh status --ha   each node and its role
#   services.sh env --ha      the settings (multi-host where it applies), as `env` prints them in single-node mode
#   services.sh fault NAME    rabbit-leader | rabbit-restart | pg-primary | pg-restart | pgbouncer
#   services.sh down --ha     stops it (data kept); `purge` removes both topologies' data
# The single-node services may run beside it; without --ha a command acts on them, unless only this one runs.
#
# Ports (all on 127.0.0.1), from WORKERS_HA_PORT_BASE (default 26100, below the kernel's ephemeral port range
# 32768-60999: there an outgoing connection of a busy test run once held the port a node was about to listen on),
# pinned in <data>/ha/config.env while up:
#   base+0 pg_auto_failover monitor, base+1..3 PostgreSQL nodes, base+11..13 PgBouncer (one per node),
#   base+20 epmd, base+21..23 AMQP, base+31..33 management HTTP, base+41..43 Erlang distribution.
#
# Logins: the same as single-node mode (credentials.env and secrets/ are shared). Inside the formation,
# pg_auto_failover's own users (autoctl_node, pgautofailover_monitor, pgautofailover_replicator) are trusted on
# loopback; every other TCP login needs its password (scram-sha-256). PgBouncer looks passwords up with auth_query
# as postgres, so a role's password set by the migrator works through it at once (SCRAM pass-through).

HA="$DATA/ha"
HA_CONFIG="$HA/config.env"
HA_FAULTS="rabbit-leader rabbit-restart rabbit-block rabbit-unblock pg-primary pg-restart pgbouncer"

ha_ports() {
    local base="${HA_BASE:-${WORKERS_HA_PORT_BASE:-26100}}"
    valid_port "$base" && [ "$base" -le 65400 ] || die "invalid WORKERS_HA_PORT_BASE '$base'"
    HA_BASE="$base"
    MON_PORT=$base
    PG_PORTS=($((base + 1)) $((base + 2)) $((base + 3)))
    BOUNCER_PORTS=($((base + 11)) $((base + 12)) $((base + 13)))
    HA_EPMD_PORT=$((base + 20))
    AMQP_PORTS=($((base + 21)) $((base + 22)) $((base + 23)))
    MGMT_PORTS=($((base + 31)) $((base + 32)) $((base + 33)))
    DIST_PORTS=($((base + 41)) $((base + 42)) $((base + 43)))
    # The single-node helpers (logins, env) talk to node 1.
    AMQP_PORT=${AMQP_PORTS[0]} MGMT_PORT=${MGMT_PORTS[0]} EPMD_PORT=$HA_EPMD_PORT
    R="$HA/rabbit/n1"
}

ha_load() {
    HA_BASE="" HA_PG=""
    # shellcheck disable=SC1090
    [ -f "$HA_CONFIG" ] && . "$HA_CONFIG"
    ha_ports
}

ha_save() {
    mkdir -p "$HA"
    printf 'HA_BASE=%q\nHA_PG=%q\n' "$HA_BASE" "$HA_PG" >"$HA_CONFIG.tmp"
    mv -f "$HA_CONFIG.tmp" "$HA_CONFIG"
}

# Does any part of the HA topology run? Then status, env, down and fault act on it.
ha_mode() {
    [ -f "$HA_CONFIG" ] || return 1
    (
        ha_load
        local n
        for n in 1 2 3; do rnode_pid "$n" >/dev/null && exit 0; bouncer_pid "$n" >/dev/null 2>&1 && exit 0; done
        [ -n "$HA_PG" ] && keeper_pid monitor >/dev/null && exit 0
        exit 1
    )
}

node_name() { echo "workers-ha${HA_BASE}-n$1@localhost"; }

# ------------------------------------------------------------------ PostgreSQL

# PostgreSQL's files: <data>/ha/pg if the postgres user can reach it, else a /tmp directory of this checkout.
ha_choose_pg() {
    [ -n "$HA_PG" ] && [ -d "$HA_PG" ] && return 0
    local want="$HA/pg"
    mkdir -p "$want"; chown postgres:postgres "$want"; chmod 700 "$want"
    if as_pg test -w "$want" -a -x "$want"; then HA_PG="$want"; return 0; fi
    rmdir "$want" 2>/dev/null || true
    HA_PG="/tmp/workers-ha-$HA_BASE-$(printf '%s' "$DATA" | cksum | cut -d' ' -f1)"
    mkdir -p "$HA_PG"; chown postgres:postgres "$HA_PG"; chmod 700 "$HA_PG"
    log "postgres user cannot reach $want; using $HA_PG"
}

# pg_autoctl as the postgres user, with its state under our directory (not XDG dirs of root: pg_auto_failover#1058).
autoctl() {
    local bin
    bin="$(find_pg_bin)"
    (cd / && runuser -u postgres -- env XDG_CONFIG_HOME="$HA_PG/xdg/config" XDG_DATA_HOME="$HA_PG/xdg/data" \
        XDG_RUNTIME_DIR="$HA_PG/xdg/run" PATH="$bin:/usr/bin:/bin" timeout 120 pg_autoctl "$@" </dev/null)
}

pg_dir() { if [ "$1" = monitor ]; then echo "$HA_PG/monitor"; else echo "$HA_PG/n$1"; fi; }

# The pid of the keeper (`pg_autoctl run`) of monitor|1|2|3, if it runs. It leads its own process group, with its
# PostgreSQL in it.
keeper_pid() {
    local pid
    pid="$(pgrep -o -f "^pg_autoctl run --pgdata $(pg_dir "$1")\$" 2>/dev/null)" || return 1
    alive "$pid" || return 1
    echo "$pid"
}

keeper_start() {
    local dir
    dir="$(pg_dir "$1")"
    keeper_pid "$1" >/dev/null && return 0
    # After a kill -9 the dead keeper and postmaster can stay zombies until they are reaped, and both programs take a
    # pidfile naming a zombie for an instance still running; ours (keeper_pid, postmaster_pid) know better.
    rm -f "$HA_PG/xdg/run/pg_autoctl$dir/pg_autoctl.pid"
    postmaster_pid "$1" >/dev/null || rm -f "$dir/postmaster.pid"
    (cd / && runuser -u postgres -- env XDG_CONFIG_HOME="$HA_PG/xdg/config" XDG_DATA_HOME="$HA_PG/xdg/data" \
        XDG_RUNTIME_DIR="$HA_PG/xdg/run" PATH="$(find_pg_bin):/usr/bin:/bin" \
        setsid -f pg_autoctl run --pgdata "$dir" </dev/null >>"$HA_PG/keeper-$1.log" 2>&1 9>&-)
    local i
    for i in $(seq 1 50); do keeper_pid "$1" >/dev/null && return 0; sleep 0.1; done
    tail -n 20 "$HA_PG/keeper-$1.log" >&2 || true
    die "pg_autoctl for $1 did not start (log: $HA_PG/keeper-$1.log)"
}

# kill -9 a keeper and its PostgreSQL (the process group), as a crashed machine would lose them.
keeper_kill() {
    local pid
    pid="$(keeper_pid "$1")" || return 0
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || true
}

# The postmaster of monitor|1|2|3, if it runs (it outlives a keeper that died).
postmaster_pid() { local pid; pid="$(read_pid "$(pg_dir "$1")/postmaster.pid")"; pid_is "$pid" postgres || return 1; echo "$pid"; }

keeper_stop() {
    local pid pm
    pid="$(keeper_pid "$1")" && { kill -TERM "$pid" 2>/dev/null || true; wait_gone "$pid" 30 || kill -KILL -- "-$pid" 2>/dev/null || true; }
    if pm="$(postmaster_pid "$1")"; then
        as_pg "$(find_pg_bin)/pg_ctl" -D "$(pg_dir "$1")" -m fast -w -t 30 stop >/dev/null 2>&1 || kill -KILL "$pm" 2>/dev/null || true
        wait_gone "$pm" 10 || true
    fi
}

monitor_uri() { echo "postgres://autoctl_node@127.0.0.1:$MON_PORT/pg_auto_failover?sslmode=disable"; }

# Rows "name port reported-state assigned-state" from the monitor.
formation_state() {
    PGCONNECT_TIMEOUT=3 "$(find_pg_bin)/psql" -X -At -F ' ' "$(monitor_uri)" \
        -c "SELECT nodename, nodeport, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid" 2>/dev/null
}

# The node number (1..3) the monitor names primary, or nothing.
pg_primary() {
    formation_state | awk '$3 == $4 && ($3 == "primary" || $3 == "single" || $3 == "wait_primary") { sub(/^n/, "", $1); print $1; exit }'
}

# Fewer checks, sooner: on one machine a node that stops answering for 3 s is gone (defaults: 20 s unhealthy, 30 s
# to give up on a demotion, about 55 s from kill -9 to a writable primary; with these, about 14 s).
write_monitor_tuning() {
    cat >"$(pg_dir monitor)/workers.conf" <<'EOF'
# written by compose/local/ha.sh
pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 3000
pgautofailover.primary_demote_timeout = 5000
EOF
    chown postgres:postgres "$(pg_dir monitor)/workers.conf"
    grep -q "workers.conf" "$(pg_dir monitor)/postgresql.conf" \
        || printf "\ninclude_if_exists = 'workers.conf'\n" >>"$(pg_dir monitor)/postgresql.conf"
}

# Settings the standbys copy with the base backup: no port or address here (pg_autoctl sets those per node).
# Synchronous commit stays on (pg_autoctl's); fsync off only because this is a throwaway copy on one disk.
write_node_settings() {
    local dir
    dir="$(pg_dir "$1")"
    cat >"$dir/workers.conf" <<'EOF'
# written by compose/local/ha.sh -- throwaway settings, copied to the standbys by their base backup
max_connections = 300
fsync = off
full_page_writes = off
password_encryption = 'scram-sha-256'
EOF
    chown postgres:postgres "$dir/workers.conf"
    grep -q "workers.conf" "$dir/postgresql.conf" || printf "\ninclude_if_exists = 'workers.conf'\n" >>"$dir/postgresql.conf"
}

# initdb trusts every loopback login; keep that for pg_auto_failover's own users only, passwords for the rest.
require_passwords() {
    local hba
    hba="$1/pg_hba.conf"
    grep -q "written by compose/local/ha.sh" "$hba" && return 0
    awk '
        /^host[ \t]+all[ \t]+all[ \t]+(127\.0\.0\.1\/32|::1\/128)[ \t]+trust/ {
            if (!done) {
                print "# written by compose/local/ha.sh: pg_auto_failover'"'"'s users trusted on loopback, every other login with a password"
                print "host all pgautofailover_monitor 127.0.0.1/32 trust"
                print "host all pgautofailover_replicator 127.0.0.1/32 trust"
                print "host all autoctl_node 127.0.0.1/32 trust"
                print "host all all 127.0.0.1/32 scram-sha-256"
                done = 1
            }
            next
        }
        { print }' "$hba" >"$hba.tmp"
    mv -f "$hba.tmp" "$hba"
    chown postgres:postgres "$hba"
}

ha_pg_wait_primary() {
    local i p
    for i in $(seq 1 "${2:-600}"); do
        p="$(pg_primary)"
        if [ -n "$p" ] && [ -z "${1:-}" -o "$p" = "${1:-}" ]; then return 0; fi
        sleep 0.2
    done
    formation_state >&2 || true
    die "no PostgreSQL primary after $(( ${2:-600} / 5 )) s (logs: $HA_PG/keeper-*.log)"
}

# Every node reported and assigned the same state, and it is primary or secondary.
# A primary and two secondaries, each in the state the monitor assigned it.
ha_pg_settled() {
    [ "$(awk '$3 == $4 && ($3 == "primary" || $3 == "secondary")' <<<"$1" | wc -l)" -eq 3 ]
}

ha_pg_wait_settled() {
    local i state
    for i in $(seq 1 900); do
        state="$(formation_state)"
        ha_pg_settled "$state" && return 0
        sleep 0.2
    done
    printf '%s\n' "$state" >&2
    die "the PostgreSQL formation did not settle in 180 s (logs: $HA_PG/keeper-*.log; a formation whose nodes were all killed at once can need a fresh start: services.sh purge --ha)"
}

psql_node() { # psql_node N SQL: as postgres over the node's unix socket (trusted there)
    "$(find_pg_bin)/psql" -X -q -At -h /var/run/postgresql -p "${PG_PORTS[$(($1 - 1))]}" -U postgres -d postgres -c "$2"
}

# The superuser's password (the admin connection logs in with it; PgBouncer's auth_query too), set on the primary
# over its unix socket, where it is trusted; the standbys replicate it. The primary may still be starting: retried.
ha_pg_set_password() {
    local i
    for i in $(seq 1 150); do
        psql_node "$(pg_primary)" "ALTER ROLE postgres PASSWORD '$PG_PASSWORD'" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "could not set the postgres password on the primary (n$(pg_primary))"
}

ha_pg_up() {
    local bin n i
    bin="$(find_pg_bin)"
    ha_choose_pg
    ha_save # before anything starts: a failed `up` must still find what to stop
    mkdir -p "$HA_PG/xdg/config" "$HA_PG/xdg/data" "$HA_PG/xdg/run"
    chown -R postgres:postgres "$HA_PG"
    chmod 700 "$HA_PG/xdg/run"
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql

    if [ ! -s "$(pg_dir monitor)/PG_VERSION" ]; then
        log "postgres: creating the pg_auto_failover monitor on 127.0.0.1:$MON_PORT"
        rm -rf "$(pg_dir monitor)"
        autoctl create monitor --pgdata "$(pg_dir monitor)" --pgport "$MON_PORT" --hostname 127.0.0.1 \
            --auth trust --no-ssl --pgctl "$bin/pg_ctl" >"$HA_PG/create-monitor.log" 2>&1 \
            || { tail -n 20 "$HA_PG/create-monitor.log" >&2; die "pg_autoctl create monitor failed"; }
        autoctl config set --pgdata "$(pg_dir monitor)" postgresql.listen_addresses 127.0.0.1 >/dev/null
        write_monitor_tuning
        require_passwords "$(pg_dir monitor)"
    fi
    keeper_start monitor
    for i in $(seq 1 300); do formation_state >/dev/null && break; sleep 0.2; done
    formation_state >/dev/null || die "the pg_auto_failover monitor does not answer on 127.0.0.1:$MON_PORT"

    for n in 1 2 3; do
        if [ ! -s "$(pg_dir "$n")/PG_VERSION" ]; then
            log "postgres: creating node n$n on 127.0.0.1:${PG_PORTS[$((n - 1))]}"
            rm -rf "$(pg_dir "$n")"
            autoctl create postgres --pgdata "$(pg_dir "$n")" --pgport "${PG_PORTS[$((n - 1))]}" --listen 127.0.0.1 \
                --hostname 127.0.0.1 --name "n$n" --auth trust --no-ssl --pgctl "$bin/pg_ctl" --monitor "$(monitor_uri)" \
                >"$HA_PG/create-n$n.log" 2>&1 \
                || { tail -n 20 "$HA_PG/create-n$n.log" >&2; die "pg_autoctl create postgres n$n failed"; }
            if [ "$n" = 1 ]; then
                # Before the standbys clone it: they copy its settings and its pg_hba.conf.
                write_node_settings 1
                require_passwords "$(pg_dir 1)"
                keeper_start 1
                ha_pg_wait_primary 1
                ha_pg_set_password
                continue
            fi
        fi
        keeper_start "$n"
    done
    ha_pg_wait_settled
    ha_pg_set_password
    log "postgres: formation ready (primary n$(pg_primary), $(autoctl show settings --pgdata "$(pg_dir monitor)" 2>/dev/null \
        | awk -F'|' '/number_sync_standbys/ { gsub(/ /, "", $4); print "number_sync_standbys " $4 }'))"
}

ha_pg_down() {
    local n
    for n in 3 2 1 monitor; do
        if keeper_pid "$n" >/dev/null || postmaster_pid "$n" >/dev/null; then log "postgres: stopping $n"; keeper_stop "$n"; fi
    done
}

# -------------------------------------------------------------------- PgBouncer

bouncer_dir() { echo "$HA_PG/bouncer"; }
bouncer_pid() { local pid; pid="$(read_pid "$(bouncer_dir)/b$1.pid")"; pid_is "$pid" pgbouncer || return 1; echo "$pid"; }

bouncer_start() {
    local n="$1" dir
    dir="$(bouncer_dir)"
    bouncer_pid "$n" >/dev/null && return 0
    mkdir -p "$dir"
    # A killed PgBouncer can linger as a zombie until it is reaped, and PgBouncer takes a pidfile naming a zombie for
    # another instance running: ours (bouncer_pid) knows it is not.
    rm -f "$dir/b$n.pid"
    (umask 077; printf '"postgres" "%s"\n' "$PG_PASSWORD" >"$dir/userlist.txt")
    cat >"$dir/b$n.ini" <<EOF
; written by compose/local/ha.sh -- one PgBouncer in front of PostgreSQL node n$n
[databases]
* = host=127.0.0.1 port=${PG_PORTS[$((n - 1))]}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${BOUNCER_PORTS[$((n - 1))]}
unix_socket_dir =
pidfile = $dir/b$n.pid
logfile = $dir/b$n.log
; The RLS context is set with set_config(..., true): transaction-local, so transaction pooling keeps it correct.
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
; Clients log in with their own passwords; PgBouncer reads the SCRAM secret with auth_query and passes it on.
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
auth_user = postgres
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename = \$1
; Npgsql sends these at start-up; PgBouncer 1.18 would refuse the connection otherwise.
ignore_startup_parameters = extra_float_digits,application_name
server_check_delay = 1
server_login_retry = 1
; The follower (bouncer_follow) sends RECONNECT through the admin console when a node changes role.
admin_users = postgres
EOF
    chown -R postgres:postgres "$dir"
    (cd / && runuser -u postgres -- setsid pgbouncer -d -q "$dir/b$n.ini" </dev/null >>"$dir/b$n.out" 2>&1 9>&-) \
        || { tail -n 20 "$dir/b$n.out" "$dir/b$n.log" >&2 2>/dev/null; die "PgBouncer b$n did not start"; }
    local i
    for i in $(seq 1 50); do port_in_use "${BOUNCER_PORTS[$((n - 1))]}" && return 0; sleep 0.1; done
    die "PgBouncer b$n does not listen on 127.0.0.1:${BOUNCER_PORTS[$((n - 1))]} (log: $dir/b$n.log)"
}

bouncer_kill() {
    local pid
    pid="$(bouncer_pid "$1")" || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || true
}

bouncer_stop() {
    local pid
    pid="$(bouncer_pid "$1")" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || { kill -KILL "$pid" 2>/dev/null || true; }
}

# PgBouncer keeps the startup parameters of a pool's first server login and gives them to every client that logs in
# later, in_hot_standby among them: after a failover each bouncer would go on telling Npgsql that its node has the role
# it had before, and Target Session Attributes=primary would find no primary, or the old one, until PgBouncer
# restarts. pg_auto_failover runs no hooks on a role change, so a follower watches the monitor and sends each bouncer
# RECONNECT (its server connections are replaced as they come free, with the new parameters) when a role changes.
bouncer_admin() { # bouncer_admin N COMMAND
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=3 "$(find_pg_bin)/psql" -X -q -At \
        "host=127.0.0.1 port=${BOUNCER_PORTS[$(($1 - 1))]} user=postgres dbname=pgbouncer" -c "$2" >/dev/null 2>&1
}

follower_pid() { local pid; pid="$(read_pid "$HA/follower.pid")"; pid_is "$pid" bash || return 1; echo "$pid"; }

# The loop itself (services.sh _follow-bouncers, started by follower_start).
bouncer_follow() {
    ha_load
    echo "$$" >"$HA/follower.pid"
    local last="" roles n
    while true; do
        # node and the role it reports, e.g. "n1 primary n2 secondary n3 secondary"
        roles="$(formation_state | awk '{ printf "%s %s ", $1, $3 }')"
        if [ -n "$roles" ] && [ "$roles" != "$last" ]; then
            if [ -n "$last" ]; then
                for n in 1 2 3; do bouncer_admin "$n" RECONNECT || echo "$(date -u +%T) b$n: RECONNECT failed (down?)"; done
                echo "$(date -u +%T) roles now: $roles; told b1-b3 to RECONNECT"
            fi
            last="$roles"
        fi
        sleep 0.3
    done
}

follower_start() {
    follower_pid >/dev/null && return 0
    rm -f "$HA/follower.pid"
    (cd / && setsid -f bash "$SCRIPT_DIR/services.sh" _follow-bouncers </dev/null >>"$(bouncer_dir)/follower.log" 2>&1 9>&-)
    local i
    for i in $(seq 1 50); do follower_pid >/dev/null && return 0; sleep 0.1; done
    die "the PgBouncer follower did not start (log: $(bouncer_dir)/follower.log)"
}

follower_stop() {
    local pid
    pid="$(follower_pid)" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$HA/follower.pid"
}

# -------------------------------------------------------------------- RabbitMQ

rnode_dir() { echo "$HA/rabbit/n$1"; }
rnode_pid() { local pid; pid="$(read_pid "$(rnode_dir "$1")/rabbitmq.pid")"; pid_is "$pid" beam.smp || return 1; echo "$pid"; }

write_rnode_files() {
    local n="$1" d home
    d="$(rnode_dir "$n")"
    home="$HA/rabbit/home"
    mkdir -p "$d/mnesia" "$d/log" "$home"
    chmod 700 "$home"
    if [ ! -s "$home/.erlang.cookie" ]; then
        (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$home/.erlang.cookie")
    fi
    chmod 600 "$home/.erlang.cookie"
    : >"$d/rabbitmq-env.conf"
    printf '[rabbitmq_management].\n' >"$d/enabled_plugins"
    cat >"$d/rabbitmq.conf" <<EOF
# written by compose/local/ha.sh -- node n$n of 3
listeners.tcp.default = 127.0.0.1:${AMQP_PORTS[$((n - 1))]}
management.tcp.ip = 127.0.0.1
management.tcp.port = ${MGMT_PORTS[$((n - 1))]}
loopback_users = none
max_message_size = 4194304
# New quorum queues spread their leaders over the nodes (the default puts them all where the declaring client is),
# so one node's death moves about a third of the partitions, not all of them.
queue_leader_locator = balanced
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
        printf 'export HOME=%q\n' "$home"
        printf 'export RABBITMQ_CONF_ENV_FILE=%q\n' "$d/rabbitmq-env.conf"
        printf 'export RABBITMQ_CONFIG_FILE=%q\n' "$d/rabbitmq.conf"
        printf 'export RABBITMQ_ADVANCED_CONFIG_FILE=%q\n' "$d/advanced.config"
        printf 'export RABBITMQ_ENABLED_PLUGINS_FILE=%q\n' "$d/enabled_plugins"
        printf 'export RABBITMQ_MNESIA_BASE=%q\n' "$d/mnesia"
        printf 'export RABBITMQ_LOG_BASE=%q\n' "$d/log"
        printf 'export RABBITMQ_PID_FILE=%q\n' "$d/rabbitmq.pid"
        printf 'export RABBITMQ_NODENAME=%q\n' "$(node_name "$n")"
        printf 'export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1\n'
        printf 'export RABBITMQ_NODE_PORT=%q\n' "${AMQP_PORTS[$((n - 1))]}"
        printf 'export RABBITMQ_DIST_PORT=%q\n' "${DIST_PORTS[$((n - 1))]}"
        printf 'export ERL_EPMD_PORT=%q\n' "$HA_EPMD_PORT"
        printf 'export ERL_EPMD_ADDRESS=127.0.0.1\n'
        # One scheduler each, no busy waiting: three brokers, three PostgreSQL nodes and the hosts share two cores.
        printf 'export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=%q\n' "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none $dist_ip"
        printf 'export RABBITMQ_CTL_ERL_ARGS=%q\n' "$dist_ip"
    } >"$d/env.sh"
}

# hrmq N TOOL ARGS: a RabbitMQ CLI tool against node N.
hrmq() {
    local n="$1" tool="$2"; shift 2
    (. "$(rnode_dir "$n")/env.sh"; cd "$(rnode_dir "$n")" && timeout 120 "$RMQ_BIN/$tool" "$@" </dev/null)
}

rnode_start() {
    local n="$1" d i
    d="$(rnode_dir "$n")"
    rnode_pid "$n" >/dev/null && return 0
    write_rnode_files "$n"
    rm -f "$d/rabbitmq.pid"
    log "rabbitmq: starting node $(node_name "$n") (amqp 127.0.0.1:${AMQP_PORTS[$((n - 1))]})"
    (. "$d/env.sh"; cd "$d" && setsid "$RMQ_BIN/rabbitmq-server" -detached </dev/null >"$d/log/server.out" 2>&1 9>&-) \
        || { cat "$d/log/server.out" >&2; die "rabbitmq-server -detached failed for n$n"; }
    for i in $(seq 1 300); do rnode_pid "$n" >/dev/null && return 0; sleep 0.1; done
    die "RabbitMQ node n$n did not write its pid file (log: $d/log)"
}

rnode_wait_ready() {
    local n="$1" i start=$SECONDS again=""
    while ! port_in_use "${AMQP_PORTS[$((n - 1))]}"; do
        # A node whose quorum segments were cut short by a kill can crash once while recovering them (seen after a
        # test run was killed mid-way); the second boot finds them repaired. Twice is a real failure.
        if ! rnode_pid "$n" >/dev/null; then
            [ -z "$again" ] || die "RabbitMQ node n$n exited during boot, twice (log: $(rnode_dir "$n")/log)"
            log "rabbitmq: node n$n exited during boot (log: $(rnode_dir "$n")/log); starting it once more"
            again=yes
            rnode_start "$n"
        fi
        [ $((SECONDS - start)) -lt 300 ] || die "RabbitMQ node n$n not listening after 300 s (log: $(rnode_dir "$n")/log)"
        sleep 0.2
    done
    # The management listener is registered when its plugin starts, which can be after the AMQP one passed the check:
    # "started" means the API answers too (the fault scripts, the status and the tests' fixture call it).
    for i in $(seq 1 120); do
        hrmq "$n" rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1 \
            && curl -fsS -m 5 -o /dev/null -u "$RMQ_USER:$RMQ_PASSWORD" "http://127.0.0.1:${MGMT_PORTS[$((n - 1))]}/api/overview" 2>/dev/null \
            && return 0
        sleep 0.5
    done
    die "RabbitMQ node n$n did not pass check_port_connectivity, or its management API did not answer"
}

rnode_kill() {
    local pid
    pid="$(rnode_pid "$1")" || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || true
}

rnode_stop() {
    local pid
    pid="$(rnode_pid "$1")" || return 0
    hrmq "$1" rabbitmqctl -q stop >/dev/null 2>&1 || true
    wait_gone "$pid" 30 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
}

# Nodes 2 and 3 join node 1 once; later starts find the cluster in their own data.
ha_rabbit_cluster() {
    local n running
    running="$(hrmq 1 rabbitmqctl -q cluster_status --formatter json 2>/dev/null || true)"
    for n in 2 3; do
        if ! grep -q "$(node_name "$n")" <<<"$running"; then
            log "rabbitmq: n$n joins the cluster of n1"
            hrmq "$n" rabbitmqctl -q stop_app >>"$(rnode_dir "$n")/log/join.log" 2>&1
            hrmq "$n" rabbitmqctl -q reset >>"$(rnode_dir "$n")/log/join.log" 2>&1
            hrmq "$n" rabbitmqctl -q join_cluster "$(node_name 1)" >>"$(rnode_dir "$n")/log/join.log" 2>&1 || die "n$n could not join the cluster"
            # stop_app closes the AMQP listener asynchronously: start_app can find its port still taken (eaddrinuse).
            local try
            for try in $(seq 1 20); do
                hrmq "$n" rabbitmqctl -q start_app >>"$(rnode_dir "$n")/log/join.log" 2>&1 && break
                [ "$try" -lt 20 ] || die "n$n joined the cluster but its app does not start again (see $(rnode_dir "$n")/log/join.log)"
                sleep 1
            done
        fi
    done
    for n in $(seq 1 60); do
        running="$(hrmq 1 rabbitmqctl -q cluster_status --formatter json 2>/dev/null || true)"
        [ "$(grep -o '"running_nodes":\[[^]]*\]' <<<"$running" | grep -o '@localhost' | wc -l)" -eq 3 ] && return 0
        sleep 0.5
    done
    die "the RabbitMQ cluster does not show 3 running nodes: $running"
}

ha_epmd_start() {
    mkdir -p "$HA/rabbit"
    local save_r="$R" save_port="$EPMD_PORT"
    R="$HA/rabbit" EPMD_PORT="$HA_EPMD_PORT"
    mkdir -p "$R/log"
    epmd_start
    R="$save_r" EPMD_PORT="$save_port"
}

ha_epmd_stop() {
    local pid
    pid="$(read_pid "$HA/rabbit/epmd.pid")"
    if pid_is "$pid" epmd; then kill -TERM "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$HA/rabbit/epmd.pid"
}

# The node that leads the most partition queues, in any virtual host (the tests make their own), from the management
# API of a live node.
rabbit_leader_node() {
    local n
    for n in 1 2 3; do
        rnode_pid "$n" >/dev/null || continue
        curl -fsS -m 10 -u "$RMQ_USER:$RMQ_PASSWORD" \
            "http://127.0.0.1:${MGMT_PORTS[$((n - 1))]}/api/queues?columns=name,leader,node" 2>/dev/null \
            | tr '}' '\n' | grep '"workers\.chat-requests\.p[0-9]*"' | grep -o '"leader":"workers-ha[0-9]*-n[0-9]' \
            | sort | uniq -c | sort -rn | awk 'NR == 1 { sub(/.*-n/, "", $2); print $2 }'
        return 0
    done
}

# ------------------------------------------------------------------- commands

ha_check_ports() {
    local p
    for p in "$MON_PORT" "${PG_PORTS[@]}" "${BOUNCER_PORTS[@]}" "$HA_EPMD_PORT" "${AMQP_PORTS[@]}" "${MGMT_PORTS[@]}" "${DIST_PORTS[@]}"; do
        if port_in_use "$p"; then die "port $p is already in use (WORKERS_HA_PORT_BASE=$HA_BASE; 'services.sh down' first?)"; fi
    done
}

cmd_ha_up() {
    lock
    ensure_installed ha
    load_config
    load_credentials
    ha_load
    local anything=""
    local n
    for n in 1 2 3; do rnode_pid "$n" >/dev/null && anything=1; done
    [ -n "$HA_PG" ] && keeper_pid monitor >/dev/null && anything=1
    if [ -z "$anything" ]; then HA_BASE=""; ha_ports; ha_check_ports; fi
    ha_save

    ha_epmd_start
    for n in 1 2 3; do rnode_start "$n"; done
    ha_pg_up
    ha_save
    for n in 1 2 3; do bouncer_start "$n"; done
    follower_start
    for n in 1 2 3; do rnode_wait_ready "$n"; done
    ha_rabbit_cluster
    rabbit_ensure_user
    rabbit_ensure_logins
    log "ha: up (rabbitmq n1-n3 on ${AMQP_PORTS[*]}, postgres n1-n3 on ${PG_PORTS[*]}, pgbouncer on ${BOUNCER_PORTS[*]})"
    print_ha_env
}

cmd_ha_down() {
    ha_load
    local n
    follower_stop
    for n in 1 2 3; do bouncer_stop "$n"; done
    [ -n "$HA_PG" ] && ha_pg_down
    for n in 3 2 1; do
        if rnode_pid "$n" >/dev/null; then log "rabbitmq: stopping n$n"; rnode_stop "$n"; fi
    done
    ha_epmd_stop
    log "ha: down (data kept in $HA${HA_PG:+ and $HA_PG})"
}

cmd_ha_purge() {
    cmd_ha_down
    [ -n "$HA_PG" ] && [ "$HA_PG" != "$HA/pg" ] && rm -rf "$HA_PG"
    rm -rf "$HA"
}

cmd_ha_status() {
    load_credentials
    ha_load
    local n rc=0 pid leaders
    leaders=""
    for n in 1 2 3; do  # from any node that answers: the first may be the one a fault killed
        leaders="$(curl -fsS -m 10 -u "$RMQ_USER:$RMQ_PASSWORD" "http://127.0.0.1:${MGMT_PORTS[$((n - 1))]}/api/queues?columns=name,leader" 2>/dev/null)" && break
    done
    for n in 1 2 3; do
        if pid="$(rnode_pid "$n")"; then
            local led
            led="$(tr '}' '\n' <<<"$leaders" | grep -c "\"leader\":\"$(node_name "$n")\"" || true)"
            echo "rabbitmq n$n: running (pid $pid) $(node_name "$n") amqp 127.0.0.1:${AMQP_PORTS[$((n - 1))]}, leads $led queues"
        else echo "rabbitmq n$n: stopped"; rc=3; fi
    done
    if [ -n "$HA_PG" ] && keeper_pid monitor >/dev/null; then
        echo "postgres monitor: running 127.0.0.1:$MON_PORT"
        local state
        state="$(formation_state)"
        for n in 1 2 3; do
            local row
            row="$(awk -v n="n$n" '$1 == n { print $3 " (assigned " $4 ")" }' <<<"$state")"
            if keeper_pid "$n" >/dev/null; then echo "postgres n$n: running 127.0.0.1:${PG_PORTS[$((n - 1))]} ${row:-unknown}"
            else echo "postgres n$n: stopped (monitor: ${row:-unknown})"; rc=3; fi
        done
    else echo "postgres: monitor stopped"; rc=3; fi
    for n in 1 2 3; do
        if pid="$(bouncer_pid "$n" 2>/dev/null)"; then echo "pgbouncer b$n: running (pid $pid) 127.0.0.1:${BOUNCER_PORTS[$((n - 1))]} -> n$n"
        else echo "pgbouncer b$n: stopped"; rc=3; fi
    done
    if pid="$(follower_pid)"; then echo "pgbouncer follower: running (pid $pid), log $(bouncer_dir)/follower.log"
    else echo "pgbouncer follower: stopped"; rc=3; fi
    return "$rc"
}

cmd_ha_env() {
    load_credentials
    ha_load
    rnode_pid 1 >/dev/null || rnode_pid 2 >/dev/null || rnode_pid 3 >/dev/null || die "the HA services are not running (run: $0 up --ha)"
    print_ha_env
}

cmd_ha_fault() {
    local name="${1:-}" n t0=$SECONDS
    load_credentials
    ha_load
    case "$name" in
        rabbit-leader)
            n="$(rabbit_leader_node)"
            [ -n "$n" ] || die "no partition queue leader found (is the topology declared?)"
            log "fault: kill -9 RabbitMQ node n$n ($(node_name "$n")), the leader of the most partition queues"
            rnode_kill "$n"
            echo "killed rabbitmq n$n" ;;
        rabbit-restart)
            for n in 1 2 3; do rnode_pid "$n" >/dev/null || { rnode_start "$n"; rnode_wait_ready "$n"; echo "started rabbitmq n$n"; }; done ;;
        rabbit-block)
            # A memory alarm on every node: the cluster blocks every publishing connection and confirms nothing, as
            # when a node runs out of memory or disk. Consumers go on.
            for n in 1 2 3; do rnode_pid "$n" >/dev/null && hrmq "$n" rabbitmqctl -q set_vm_memory_high_watermark 0 >/dev/null; done
            echo "rabbitmq n1-n3 block publishers (memory alarm)" ;;
        rabbit-unblock)
            for n in 1 2 3; do rnode_pid "$n" >/dev/null && hrmq "$n" rabbitmqctl -q set_vm_memory_high_watermark 0.4 >/dev/null; done
            echo "rabbitmq n1-n3 accept publishers again" ;;
        pg-primary)
            # A second kill before the first failover settled takes the formation below its quorum: refuse it.
            local state
            state="$(formation_state)"
            ha_pg_settled "$state" || { printf '%s\n' "$state" >&2; die "the PostgreSQL formation has not settled since the last fault: 'fault pg-restart' first"; }
            n="$(pg_primary)"
            [ -n "$n" ] || die "no PostgreSQL primary to kill"
            log "fault: kill -9 PostgreSQL primary n$n (its keeper and server)"
            keeper_kill "$n"
            echo "killed postgres n$n" ;;
        pg-restart)
            for n in 1 2 3; do
                keeper_pid "$n" >/dev/null || { keeper_start "$n"; echo "started postgres n$n"; }
            done
            ha_pg_wait_settled ;;
        pgbouncer)
            # Down long enough (WORKERS_HA_BOUNCER_DOWN seconds, default 3) that transactions fail while the partition
            # leases (direct connections) hold: the turns must wait in place, keeping their sessions' order.
            local down="${WORKERS_HA_BOUNCER_DOWN:-3}"
            for n in 1 2 3; do bouncer_kill "$n"; done
            sleep "$down"
            for n in 1 2 3; do bouncer_start "$n"; done
            echo "restarted pgbouncer b1-b3 after ${down} s down" ;;
        *) die "unknown fault '$name' (one of: $HA_FAULTS)" ;;
    esac
    log "fault $name: done in $((SECONDS - t0)) s"
}

print_ha_env() {
    local db="${WORKERS_PG_DATABASE:-workers}" direct="" pooled="" p
    for p in "${PG_PORTS[@]}"; do direct="${direct:+$direct,}127.0.0.1:$p"; done
    for p in "${BOUNCER_PORTS[@]}"; do pooled="${pooled:+$pooled,}127.0.0.1:$p"; done
    # Direct (multi-host, to whichever node is primary): the migrator, and the worker's partition leases (session
    # advisory locks, which a transaction pooler cannot keep). Pooled (one PgBouncer per node, the same rule): the
    # hosts' transactions. Npgsql prepares nothing unless asked (Max Auto Prepare=0), and PgBouncer 1.18 could not
    # keep it; No Reset On Close, since a transaction pooler resets nothing between clients anyway.
    # Host Recheck Seconds: how long Npgsql believes a host's role; after a failover, 2 s rather than 10.
    local pool="Target Session Attributes=primary;Host Recheck Seconds=2;Max Auto Prepare=0;No Reset On Close=true"
    printf 'ConnectionStrings__PostgresAdmin=%s\n' "$(sq "Host=$direct;Target Session Attributes=primary;Username=$PG_USER;Password=$PG_PASSWORD;Database=$db")"
    printf 'ConnectionStrings__Postgres=%s\n' "$(sq "Host=$pooled;$pool;Username=workers_app;Password=$(login_password pg-app);Database=$db")"
    printf 'ConnectionStrings__PostgresWorker=%s\n' "$(sq "Host=$pooled;$pool;Username=workers_worker;Password=$(login_password pg-worker);Database=$db")"
    printf 'ConnectionStrings__PostgresLeases=%s\n' "$(sq "Host=$direct;Target Session Attributes=primary;Host Recheck Seconds=2;Username=workers_worker;Password=$(login_password pg-worker);Database=$db")"
    printf 'ConnectionStrings__PostgresNotifier=%s\n' "$(sq "Host=$pooled;$pool;Username=workers_notifier;Password=$(login_password pg-notifier);Database=$db")"
    printf 'ConnectionStrings__PostgresOperator=%s\n' "$(sq "Host=$pooled;$pool;Username=workers_operator;Password=$(login_password pg-operator);Database=$db")"
    printf 'WORKERS_PGBOUNCER_HOSTS=%s\n' "$pooled"
    local nodes=""
    for p in "${AMQP_PORTS[@]}"; do nodes="${nodes:+$nodes,}127.0.0.1:$p"; done
    printf 'RabbitMq__Host=127.0.0.1\n'
    printf 'RabbitMq__Port=%s\n' "${AMQP_PORTS[0]}"
    printf 'RabbitMq__Nodes=%s\n' "$nodes"
    printf 'RabbitMq__Username=%s\n' "$(sq "$RMQ_USER")"
    printf 'RabbitMq__Password=%s\n' "$(sq "$RMQ_PASSWORD")"
    printf 'RabbitMq__ManagementPort=%s\n' "${MGMT_PORTS[0]}"
    local mgmt=""
    for p in "${MGMT_PORTS[@]}"; do mgmt="${mgmt:+$mgmt,}127.0.0.1:$p"; done
    printf 'RabbitMq__ManagementNodes=%s\n' "$mgmt"
    printf 'Operator__ManagementUsername=workers-monitor\n'
    printf 'Operator__ManagementPassword=%s\n' "$(sq "$(login_password workers-monitor)")"
    local urls=""
    for p in "${AMQP_PORTS[@]}"; do urls="${urls:+$urls }amqp://$RMQ_USER:$RMQ_PASSWORD@127.0.0.1:$p/%2F"; done
    printf 'WORKERS_AMQP_URLS=%s\n' "$(sq "$urls")"
    printf 'WORKERS_AMQP_URL_ADMIN=%s\n' "$(sq "amqp://$RMQ_USER:$RMQ_PASSWORD@127.0.0.1:${AMQP_PORTS[0]}/%2F")"
    local component user
    for component in PRODUCER WORKER NOTIFIER MONITOR; do
        user="workers-${component,,}"
        printf 'WORKERS_AMQP_URL_%s=%s\n' "$component" "$(sq "amqp://$user:$(login_password "$user")@127.0.0.1:${AMQP_PORTS[0]}/%2F")"
    done
}
