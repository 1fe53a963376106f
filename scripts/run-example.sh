#!/usr/bin/env bash
# Build ruwsgi and serve examples/hello.py on http://127.0.0.1:8000 (master + 2 workers).
#   bash scripts/run-example.sh          # command-line options
#   bash scripts/run-example.sh --ini    # the same from examples/hello.ini
# Then: curl http://127.0.0.1:8000/   ->  Hello, World!
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin ruwsgi
if [ "${1:-}" = "--ini" ]; then
    exec target/release/ruwsgi --ini examples/hello.ini
fi
exec target/release/ruwsgi --http-socket 127.0.0.1:8000 --wsgi-file examples/hello.py --master --processes 2
