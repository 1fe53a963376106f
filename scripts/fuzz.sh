#!/usr/bin/env bash
# Run every fuzz target for a bounded time (not part of CI).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Each target starts
# from its checked-in seeds (fuzz/seeds/<target>/) and the HTTP dictionary. A crash stops
# the run with a non-zero exit; the crashing input is copied into fuzz/seeds/<target>/ so
# that, once fixed, it stays in the regression corpus (`cargo test --manifest-path
# fuzz/Cargo.toml` runs every seed through its oracle on stable).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(uwsgi_packet uwsgi_vars http_head chunked_decoder cache_packet config)
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cd fuzz
for t in "${TARGETS[@]}"; do
    echo "==> fuzzing $t for ${SECS}s"
    corpus="target/corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    dict=()
    [ "$t" = http_head ] || [ "$t" = chunked_decoder ] && dict=(-dict=dict/http.dict)
    if ! cargo +nightly fuzz run "$t" "$corpus" "seeds/$t" -- \
            -max_total_time="$SECS" -rss_limit_mb=2048 "${dict[@]}" \
            -artifact_prefix="artifacts/$t/"; then
        for crash in "artifacts/$t"/*; do
            [ -f "$crash" ] && cp "$crash" "seeds/$t/$(basename "$crash")"
        done
        echo "==> $t crashed: the input is now in fuzz/seeds/$t/; fix it, keep the seed"
        exit 1
    fi
done
echo "==> no crash in ${#TARGETS[@]} targets (${SECS}s each)"
