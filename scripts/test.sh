#!/usr/bin/env bash
# The single test command: installs what is needed, builds ruwsgi, runs the Rust tests
# and the Python end-to-end suite. Exits non-zero if anything fails.
#
# Environment:
#   PYTEST_ARGS   extra arguments for pytest (e.g. "-k http_rules -x")
#   SKIP_SETUP=1  skip scripts/setup.sh (already installed)
#   SKIP_CARGO_TEST=1  skip `cargo test --workspace`
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)

summary() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - START ))"; }
fail() { summary "FAILED: $1"; exit 1; }

if [ "${SKIP_SETUP:-0}" != 1 ]; then
    echo "==> setup"
    bash scripts/setup.sh || fail "scripts/setup.sh"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check || fail "cargo fmt --check (run: cargo fmt --all)"

echo "==> cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings || fail "cargo clippy"

echo "==> cargo build --release"
cargo build --release --workspace || fail "cargo build --release"
[ -x target/release/ruwsgi ] || fail "target/release/ruwsgi was not built"

rust_status="skipped"
if [ "${SKIP_CARGO_TEST:-0}" != 1 ]; then
    echo "==> cargo test --workspace"
    if cargo test --release --workspace; then rust_status="ok"; else fail "cargo test --workspace"; fi
    echo "==> fuzz oracles over the seed corpus (regression suite)"
    cargo test --release --manifest-path fuzz/Cargo.toml || fail "fuzz oracles (fuzz/)"
fi

echo "==> pytest tests/"
export RUWSGI_BIN="${RUWSGI_BIN:-$ROOT/target/release/ruwsgi}"
# shellcheck disable=SC2086
.venv/bin/python -m pytest tests/ -q -p no:cacheprovider --timeout=120 -rfEs ${PYTEST_ARGS:-}
rc=$?
case $rc in
    0) ;;
    5) fail "pytest collected no tests" ;;
    *) fail "pytest exited with $rc" ;;
esac
summary "all tests passed (cargo test: $rust_status, pytest: ok)"
