#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing (the AWS
# CLI from PyPI as an independent client, Garage from crates.io), checks
# formatting and lints, starts a throwaway Garage on 127.0.0.1, and runs
# every test against it. Prints how long each step took.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

step_start=$SECONDS
step() {
    local now=$SECONDS
    [[ -n ${STEP:-} ]] && echo "test.sh: ${STEP} took $((now - step_start))s"
    STEP=$1
    step_start=$now
    echo "test.sh: == $1"
}

step "tools"
command -v cargo >/dev/null || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 2; }
if ! command -v aws >/dev/null 2>&1; then
    python3 -m pip install --quiet awscli
    hash -r
fi
# moto plays STS and the EC2 instance metadata service for the credential tests.
if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install --quiet 'moto[server]'
    hash -r
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The mount tests need fusermount3 (fuse3) to unmount, and as a user to
# mount; ferry itself builds without any C library. rclone is an
# independent client that uploads without checksums; socat and openssl
# serve HTTPS through a private CA for the --ca-bundle test; strace counts
# the file bytes a no-op --checksum run reads.
if ! command -v fusermount3 >/dev/null 2>&1 || ! command -v rclone >/dev/null 2>&1 \
    || ! command -v socat >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1 \
    || ! command -v strace >/dev/null 2>&1; then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fuse3 rclone socat openssl strace >/dev/null
fi

step "garage install"
bash scripts/garage.sh install

step "fmt and clippy"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "build"
cargo test --no-run --quiet

step "garage start"
GARAGE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferry-garage.XXXXXX")
trap 'bash scripts/garage.sh stop "$GARAGE_DIR" >/dev/null 2>&1 || true; rm -rf "$GARAGE_DIR"' EXIT
bash scripts/garage.sh start "$GARAGE_DIR" --watch-pid $$
# shellcheck disable=SC1091
source "$GARAGE_DIR/env"

step "cargo test"
cargo test

step "done"
