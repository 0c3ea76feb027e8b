#!/usr/bin/env bash
# Throwaway single-node Garage (S3-compatible) server on 127.0.0.1, for
# integration tests, demos and benchmarks.
#
#   scripts/garage.sh install
#   scripts/garage.sh start [DIR] [--watch-pid PID]
#   scripts/garage.sh cluster DIR [--nodes N] [--watch-pid PID]
#   scripts/garage.sh node-start DIR I      (a cluster node stopped before)
#   scripts/garage.sh stop [DIR]
#
# `cluster` starts N nodes (default 3) with replication factor N, one zone
# each, and writes DIR/env with FERRY_CLUSTER_ENDPOINTS (comma-separated),
# FERRY_CLUSTER_DIR and the key and bucket; node I lives in DIR/nodeI
# (its pid in DIR/nodeI/garage.pid, so a test can kill it).
#
# DIR defaults to target/garage under the repository. `start` leaves DIR/env
# with `export FERRY_TEST_...` lines; `source` it before running tests.
# Set GARAGE_BIN to use a specific garage binary, GARAGE_RUST_LOG for the
# server's log filter (DIR/garage.log).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
DEFAULT_DIR="$REPO_DIR/target/garage"
BUCKET=ferry-test
KEY_NAME=ferry-test
REGION=garage
START_TIMEOUT=${GARAGE_START_TIMEOUT:-30}
# setsid keeps the background processes out of the caller's process group;
# not available everywhere (macOS), and only a nicety.
SETSID=$(command -v setsid || true)

die() {
    echo "garage.sh: $*" >&2
    exit 1
}
log() { echo "garage.sh: $*" >&2; }

find_garage() {
    if [[ -n ${GARAGE_BIN:-} ]]; then
        [[ -x $GARAGE_BIN ]] || die "GARAGE_BIN=$GARAGE_BIN is not executable"
        echo "$GARAGE_BIN"
    elif command -v garage >/dev/null 2>&1; then
        command -v garage
    elif [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/garage ]]; then
        echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage"
    else
        return 1
    fi
}

cmd_install() {
    local bin
    if bin=$(find_garage); then
        log "already installed: $bin ($("$bin" --version 2>/dev/null | head -n1))"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust first"
    log "building garage with cargo install (takes a while: hundreds of crates)"
    local t0=$SECONDS
    cargo install garage --locked
    local dt=$((SECONDS - t0))
    log "installed garage in $((dt / 60))m$((dt % 60))s"
}

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# Prints N distinct TCP ports that were free a moment ago. Holding all the
# sockets open together is what makes them distinct.
free_ports() {
    local n=$1
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
        return
    fi
    # Fallback: probe random high ports; a refused connect means nobody is
    # listening there.
    local ports=() p
    while ((${#ports[@]} < n)); do
        p=$((20000 + RANDOM % 40000))
        [[ " ${ports[*]} " == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            ports+=("$p")
        fi
    done
    echo "${ports[*]}"
}

# kill -0 succeeds on a zombie, and a server whose parent (the shell that
# ran `start`) is gone may linger as one until a reaper gets to it.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    if [[ -r /proc/$1/stat ]] && stat=$(<"/proc/$1/stat"); then
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]]
    else
        ! ps -p "$1" -o stat= 2>/dev/null | grep -q '^Z'
    fi
}

# True if PID is alive and is a garage process (guards against pid reuse).
is_garage_pid() {
    local pid=$1
    [[ -n $pid ]] && alive "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q garage
    else
        ps -p "$pid" -o command= 2>/dev/null | grep -q garage
    fi
}

kill_and_wait() {
    local pid=$1 what=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "$what ($pid) ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    die "$what ($pid) did not exit"
}

cmd_stop() {
    local dir=${1:-$DEFAULT_DIR}
    [[ -d $dir ]] || return 0
    local pid node_dir
    for node_dir in "$dir"/node*/; do
        [[ -d $node_dir ]] && cmd_stop "${node_dir%/}"
    done
    # Watchdog first, so it does not race us to the server.
    if [[ -f $dir/watchdog.pid ]]; then
        pid=$(cat "$dir/watchdog.pid")
        if [[ -n $pid ]] && alive "$pid" &&
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q garage-watchdog; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/watchdog.pid"
    fi
    if [[ -f $dir/garage.pid ]]; then
        pid=$(cat "$dir/garage.pid")
        if is_garage_pid "$pid"; then
            kill_and_wait "$pid" "garage server"
        fi
        rm -f "$dir/garage.pid"
    fi
}

log_tail() {
    echo "---- last lines of $1 ----" >&2
    tail -n 30 "$1" >&2 || true
    echo "----" >&2
}

# The test key and bucket, through RUNNER (the caller's `run` or `retry`,
# which stop everything on failure and leave the answer in `out`); sets
# key_id and secret_key, and fails if the key's answer cannot be read.
key_and_bucket() {
    local runner=$1
    shift
    "$runner" "$@" key create "$KEY_NAME"
    key_id=$(awk -F':[[:space:]]*' '/^Key ID:/ {print $2; exit}' <<<"$out")
    secret_key=$(awk -F':[[:space:]]*' '/^Secret key:/ {print $2; exit}' <<<"$out")
    [[ -n $key_id && -n $secret_key ]] || return 1
    "$runner" "$@" bucket create "$BUCKET"
    "$runner" "$@" bucket allow --read --write --owner "$BUCKET" --key "$key_id"
    # Tests make and remove buckets of their own (ferry mb/rb).
    "$runner" "$@" key allow --create-bucket "$key_id"
}

cmd_start() {
    local dir="" watch_pid=""
    while (($#)); do
        case $1 in
        --watch-pid)
            [[ $# -ge 2 ]] || die "--watch-pid needs a PID"
            watch_pid=$2
            shift 2
            ;;
        --watch-pid=*)
            watch_pid=${1#*=}
            shift
            ;;
        -*) die "start: unknown option $1" ;;
        *)
            [[ -z $dir ]] || die "start: more than one DIR given"
            dir=$1
            shift
            ;;
        esac
    done
    dir=$(abs_dir "${dir:-$DEFAULT_DIR}")
    if [[ -n $watch_pid ]]; then
        [[ $watch_pid =~ ^[0-9]+$ ]] || die "--watch-pid: not a pid: $watch_pid"
        kill -0 "$watch_pid" 2>/dev/null || die "--watch-pid: process $watch_pid is not running"
    fi

    local bin
    bin=$(find_garage) || die "garage not found (run: $0 install, or set GARAGE_BIN)"

    # Restarting from scratch each time keeps tests independent of
    # whatever an earlier run left behind.
    cmd_stop "$dir"
    rm -rf "$dir/meta" "$dir/data"
    rm -f "$dir/env" "$dir/garage.log"
    mkdir -p "$dir/meta" "$dir/data"

    local s3_port rpc_port admin_port
    read -r s3_port rpc_port admin_port <<<"$(free_ports 3)"
    local secret
    secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

    local conf=$dir/garage.toml
    cat >"$conf" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
EOF
    chmod 600 "$conf"

    # Own session and no inherited fds: a caller that captures our output
    # (e.g. a test harness reading a pipe to EOF) must not wait on the
    # server.
    # The caller's RUST_LOG is meant for ferry, not for garage.
    RUST_LOG=${GARAGE_RUST_LOG:-garage=info} NO_COLOR=1 \
        $SETSID "$bin" -c "$conf" server \
            </dev/null >"$dir/garage.log" 2>&1 &
    local gpid=$!
    echo "$gpid" >"$dir/garage.pid"

    # On failure, kill what we started ourselves: no pid-reuse guard needed,
    # and it works even if GARAGE_BIN is a wrapper that execs something else.
    abort_start() {
        kill_and_wait "$gpid" "garage server"
        rm -f "$dir/garage.pid"
    }

    local g=("$bin" -c "$conf")
    local deadline=$((SECONDS + START_TIMEOUT)) node=""
    while :; do
        if ! alive "$gpid"; then
            log_tail "$dir/garage.log"
            rm -f "$dir/garage.pid"
            die "garage server exited during startup (log: $dir/garage.log)"
        fi
        # `node id` reads the key from disk and can answer before the RPC
        # listener is bound; `status` needs the RPC, so both must answer
        # (on a loaded machine the gap was long enough to fail `layout`).
        if node=$("${g[@]}" node id -q 2>/dev/null) && [[ -n $node ]] \
            && "${g[@]}" status >/dev/null 2>&1; then
            break
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$dir/garage.log"
            abort_start
            die "garage did not answer within ${START_TIMEOUT}s (log: $dir/garage.log)"
        fi
        sleep 0.2
    done
    node=${node%%@*}

    local out
    run() {
        if ! out=$("$@" 2>&1); then
            echo "$out" >&2
            log_tail "$dir/garage.log"
            abort_start
            die "failed: ${*:2}"
        fi
    }
    # Retried within the deadline: the first RPCs of a server still
    # starting up can be refused.
    retry() {
        while ! out=$("$@" 2>&1); do
            if ((SECONDS >= deadline)); then
                echo "$out" >&2
                log_tail "$dir/garage.log"
                abort_start
                die "failed: ${*:2}"
            fi
            sleep 0.5
        done
    }
    retry "${g[@]}" layout assign -z dc1 -c 1G "$node"
    run "${g[@]}" layout apply --version 1
    local key_id secret_key
    if ! key_and_bucket run "${g[@]}"; then
        echo "$out" >&2
        abort_start
        die "could not parse key id / secret from 'garage key create' output"
    fi

    if [[ -n $watch_pid ]]; then
        # Dies with the server either way; kills it if the watched process
        # goes first. Polling is portable (no pidfd/inotify needed).
        $SETSID bash -c "$(declare -f alive)"'
            trap "exit 0" TERM
            while alive "$1"; do
                alive "$2" || exit 0
                sleep 1
            done
            kill -TERM "$2" 2>/dev/null
            for _ in $(seq 100); do alive "$2" || exit 0; sleep 0.1; done
            kill -KILL "$2" 2>/dev/null
        ' garage-watchdog "$watch_pid" "$gpid" </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/watchdog.pid"
    fi

    local env_tmp=$dir/env.tmp
    {
        printf 'export FERRY_TEST_ENDPOINT=%q\n' "http://127.0.0.1:$s3_port"
        printf 'export FERRY_TEST_REGION=%q\n' "$REGION"
        printf 'export FERRY_TEST_BUCKET=%q\n' "$BUCKET"
        printf 'export FERRY_TEST_ACCESS_KEY_ID=%q\n' "$key_id"
        printf 'export FERRY_TEST_SECRET_ACCESS_KEY=%q\n' "$secret_key"
        printf 'export FERRY_TEST_GARAGE_CONF=%q\n' "$conf"
        printf 'export FERRY_TEST_GARAGE_BIN=%q\n' "$bin"
    } >"$env_tmp"
    # Written last and atomically: its existence means the server is ready.
    mv "$env_tmp" "$dir/env"
    log "garage up at http://127.0.0.1:$s3_port (pid $gpid); source $dir/env"
}

# Starts the server of one node whose config exists; prints its pid.
launch_node() {
    local bin=$1 ndir=$2
    RUST_LOG=${GARAGE_RUST_LOG:-garage=info} NO_COLOR=1 \
        $SETSID "$bin" -c "$ndir/garage.toml" server \
            </dev/null >>"$ndir/garage.log" 2>&1 &
    echo $! >"$ndir/garage.pid"
    echo $!
}

# Waits until the node answers over RPC; prints its node id.
await_node() {
    local bin=$1 ndir=$2 pid=$3 deadline=$4 node
    while :; do
        alive "$pid" || { log_tail "$ndir/garage.log"; die "garage node in $ndir exited during startup"; }
        if node=$("$bin" -c "$ndir/garage.toml" node id -q 2>/dev/null) && [[ -n $node ]] \
            && "$bin" -c "$ndir/garage.toml" status >/dev/null 2>&1; then
            echo "${node%%@*}"
            return 0
        fi
        ((SECONDS < deadline)) || { log_tail "$ndir/garage.log"; die "garage node in $ndir did not answer within ${START_TIMEOUT}s"; }
        sleep 0.2
    done
}

cmd_node_start() {
    local dir=$1 i=$2 bin
    bin=$(find_garage) || die "garage not found"
    local ndir=$dir/node$i
    [[ -f $ndir/garage.toml ]] || die "no node $i in $dir"
    if is_garage_pid "$(cat "$ndir/garage.pid" 2>/dev/null)"; then
        die "node $i is running"
    fi
    local pid
    pid=$(launch_node "$bin" "$ndir")
    local deadline=$((SECONDS + START_TIMEOUT))
    await_node "$bin" "$ndir" "$pid" "$deadline" >/dev/null
    # Up is not enough: until the others see it again, a read may not
    # reach its quorum once another node goes.
    # A peer whose first reconnection attempt fails (it may still hold
    # the killed process's connection) waits 30 s before the next, so the
    # nodes are told to connect both ways, again every few seconds.
    local st tries=0 peer other
    deadline=$((SECONDS + START_TIMEOUT * 2))
    while st=$("$bin" -c "$ndir/garage.toml" status 2>/dev/null) && grep -qi "failed" <<<"$st"; do
        ((SECONDS < deadline)) || die "node $i did not rejoin the cluster within $((START_TIMEOUT * 2))s"
        if ((tries++ % 10 == 0)); then
            for other in "$dir"/node*; do
                [[ $other != "$ndir" && -f $other/peer && -f $ndir/peer ]] || continue
                peer=$(cat "$other/peer")
                "$bin" -c "$ndir/garage.toml" node connect "$peer" >/dev/null 2>&1 || true
                "$bin" -c "$other/garage.toml" node connect "$(cat "$ndir/peer")" >/dev/null 2>&1 || true
            done
        fi
        sleep 0.2
    done
    log "node $i up again (pid $pid)"
}

cmd_cluster() {
    local dir="" watch_pid="" nodes=3
    while (($#)); do
        case $1 in
        --watch-pid) watch_pid=$2; shift 2 ;;
        --nodes) nodes=$2; shift 2 ;;
        -*) die "cluster: unknown option $1" ;;
        *) dir=$1; shift ;;
        esac
    done
    [[ -n $dir ]] || die "cluster: DIR is required"
    [[ $nodes =~ ^[0-9]+$ ]] && ((nodes >= 1)) || die "cluster: --nodes must be a positive number"
    dir=$(abs_dir "$dir")
    local bin
    bin=$(find_garage) || die "garage not found (run: $0 install, or set GARAGE_BIN)"
    cmd_stop "$dir"
    rm -rf "${dir:?}"/node* "${dir:?}/env"
    local ports secret i
    read -r -a ports <<<"$(free_ports $((3 * nodes)))"
    secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    local pids=() ids=() s3=() rpc=()
    local deadline=$((SECONDS + START_TIMEOUT * 2))
    for ((i = 1; i <= nodes; i++)); do
        local ndir=$dir/node$i
        mkdir -p "$ndir/meta" "$ndir/data"
        s3[i]=${ports[3 * (i - 1)]}
        rpc[i]=${ports[3 * (i - 1) + 1]}
        {
            echo "metadata_dir = \"$ndir/meta\""
            echo "data_dir = \"$ndir/data\""
            echo 'db_engine = "sqlite"'
            echo "replication_factor = $nodes"
            echo "rpc_bind_addr = \"127.0.0.1:${rpc[i]}\""
            echo "rpc_public_addr = \"127.0.0.1:${rpc[i]}\""
            echo "rpc_secret = \"$secret\""
            echo '[s3_api]'
            echo "s3_region = \"$REGION\""
            echo "api_bind_addr = \"127.0.0.1:${s3[i]}\""
            echo 'root_domain = ".s3.garage.localhost"'
            echo '[admin]'
            echo "api_bind_addr = \"127.0.0.1:${ports[3 * (i - 1) + 2]}\""
        } >"$ndir/garage.toml"
        chmod 600 "$ndir/garage.toml"
        pids[i]=$(launch_node "$bin" "$ndir")
    done
    for ((i = 1; i <= nodes; i++)); do
        ids[i]=$(await_node "$bin" "$dir/node$i" "${pids[i]}" "$deadline")
    done
    local g=("$bin" -c "$dir/node1/garage.toml") out
    retry() {
        while ! out=$("$@" 2>&1); do
            if ((SECONDS >= deadline)); then
                echo "$out" >&2
                cmd_stop "$dir"
                die "failed: ${*:2}"
            fi
            sleep 0.5
        done
    }
    for ((i = 1; i <= nodes; i++)); do
        # How a restarted node and its peers find each other again.
        echo "${ids[i]}@127.0.0.1:${rpc[i]}" >"$dir/node$i/peer"
    done
    for ((i = 2; i <= nodes; i++)); do
        retry "${g[@]}" node connect "${ids[i]}@127.0.0.1:${rpc[i]}"
    done
    for ((i = 1; i <= nodes; i++)); do
        retry "${g[@]}" layout assign -z "dc$i" -c 1G "${ids[i]}"
    done
    retry "${g[@]}" layout apply --version 1
    local key_id secret_key
    if ! key_and_bucket retry "${g[@]}"; then
        echo "$out" >&2
        cmd_stop "$dir"
        die "could not parse key id / secret from 'garage key create' output"
    fi
    if [[ -n $watch_pid ]]; then
        # Stops every node (by its current pid file, so restarted nodes
        # too) when the watched process goes.
        $SETSID bash -c "$(declare -f alive)"'
            trap "exit 0" TERM
            while alive "$1"; do sleep 1; done
            for f in "$2"/node*/garage.pid; do kill -TERM "$(cat "$f")" 2>/dev/null; done
        ' garage-watchdog "$watch_pid" "$dir" </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/watchdog.pid"
    fi
    local endpoints=""
    for ((i = 1; i <= nodes; i++)); do
        endpoints+="${endpoints:+,}http://127.0.0.1:${s3[i]}"
    done
    {
        printf 'export FERRY_CLUSTER_ENDPOINTS=%q\n' "$endpoints"
        printf 'export FERRY_CLUSTER_DIR=%q\n' "$dir"
        printf 'export FERRY_CLUSTER_REGION=%q\n' "$REGION"
        printf 'export FERRY_CLUSTER_BUCKET=%q\n' "$BUCKET"
        printf 'export FERRY_CLUSTER_ACCESS_KEY_ID=%q\n' "$key_id"
        printf 'export FERRY_CLUSTER_SECRET_ACCESS_KEY=%q\n' "$secret_key"
    } >"$dir/env.tmp"
    mv "$dir/env.tmp" "$dir/env"
    log "garage cluster of $nodes up at $endpoints; source $dir/env"
}

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
sub=$1
shift
case $sub in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
cluster) cmd_cluster "$@" ;;
node-start) cmd_node_start "$@" ;;
stop) cmd_stop "${1:-}" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
