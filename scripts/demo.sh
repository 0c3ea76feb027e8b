#!/usr/bin/env bash
# ferry's main job against a local Garage it starts: a tree goes up and comes
# back byte-exact with its modification times, and a large upload is
# interrupted and resumed, sending only what the server did not have.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
DEMO="$REPO/target/demo"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash scripts/garage.sh install
cargo build --release --quiet
FERRY="$REPO/target/release/ferry"

rm -rf "$DEMO"
mkdir -p "$DEMO"
bash scripts/garage.sh start "$DEMO/garage" --watch-pid $$ 2>/dev/null
trap 'bash scripts/garage.sh stop "$DEMO/garage" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
source "$DEMO/garage/env"
export AWS_ACCESS_KEY_ID=$FERRY_TEST_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$FERRY_TEST_SECRET_ACCESS_KEY
export AWS_ENDPOINT_URL=$FERRY_TEST_ENDPOINT AWS_REGION=$FERRY_TEST_REGION
B=$FERRY_TEST_BUCKET

say "a small tree: $DEMO/tree"
mkdir -p "$DEMO/tree/docs" "$DEMO/tree/photos"
echo "hello from ferry" >"$DEMO/tree/README.txt"
seq 1 20000 >"$DEMO/tree/docs/numbers.txt"
head -c 3000000 /dev/urandom >"$DEMO/tree/photos/raw.bin"
touch -d '2021-06-01 12:34:56.789' "$DEMO/tree/docs/numbers.txt"
find "$DEMO/tree" -type f -exec ls -l --time-style=full-iso {} +

say "ferry cp -r tree s3://$B/tree"
"$FERRY" cp -r "$DEMO/tree" "s3://$B/tree"
"$FERRY" ls -r "s3://$B/tree"

say "ferry cp -r s3://$B/tree back"
"$FERRY" cp -r "s3://$B/tree" "$DEMO/back"
diff -r "$DEMO/tree" "$DEMO/back" && echo "contents identical"
for f in README.txt docs/numbers.txt photos/raw.bin; do
    [[ $(stat -c %y "$DEMO/tree/$f") == "$(stat -c %y "$DEMO/back/$f")" ]] || { echo "mtime differs: $f"; exit 1; }
done
echo "modification times identical (to the nanosecond)"

say "cp -r -u of a tree holding a 1 GiB file, interrupted with Ctrl-C"
head -c 1G /dev/urandom >"$DEMO/tree/photos/big.bin"
SYNC=("$FERRY" cp -r -u "$DEMO/tree" "s3://$B/tree" --checkpoint-dir "$DEMO/checkpoints")
"${SYNC[@]}" --parallel 2 &
pid=$!
sleep 1.5
kill -INT "$pid" 2>/dev/null || true
wait "$pid" && echo "(finished before the interrupt: this machine is fast)" || echo "exit code $? (130 = interrupted)"
"$FERRY" checkpoint ls --checkpoint-dir "$DEMO/checkpoints"

say "the same command again: only the missing parts are sent"
"${SYNC[@]}"

say "and once more: nothing left to do"
"${SYNC[@]}"

say "everything came through intact"
rm -rf "$DEMO/back"
"$FERRY" cp -r "s3://$B/tree" "$DEMO/back"
diff -r "$DEMO/tree" "$DEMO/back" && echo "tree with the 1 GiB file: byte-exact"
rm -rf "$DEMO/tree/photos/big.bin" "$DEMO/back"
