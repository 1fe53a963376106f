#!/usr/bin/env bash
# Installs everything ruwsgi's tests need, idempotently.
#
#   bash scripts/setup.sh          system packages (nginx, ...) + .venv with the test deps
#   bash scripts/setup.sh --bench  also wrk, libev, redis-server (+ redis-py) and the peer
#                                  servers for bench/run.py and bench/cache_bench.py
#
# The project venv lives at .venv/ and is created from the same python3 the ruwsgi
# binary embeds, so the e2e tests can hand it to ruwsgi with `--home .venv`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BENCH=0
for a in "$@"; do
    case "$a" in
        --bench) BENCH=1 ;;
        -h|--help) sed -n 2,8p "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done

log() { printf 'setup: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

# ---------------------------------------------------------------- system packages
apt_pkgs=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_pkgs+=(nginx)
[ -f /etc/nginx/uwsgi_params ] || apt_pkgs+=(nginx-common)
command -v ss >/dev/null 2>&1 || apt_pkgs+=(iproute2)
command -v ps >/dev/null 2>&1 || apt_pkgs+=(procps)
command -v curl >/dev/null 2>&1 || apt_pkgs+=(curl)
if [ "$BENCH" = 1 ]; then
    command -v wrk >/dev/null 2>&1 || apt_pkgs+=(wrk)
    [ -f /usr/include/ev.h ] || apt_pkgs+=(libev-dev)
    command -v redis-server >/dev/null 2>&1 || apt_pkgs+=(redis-server)
fi

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    log "apt-get install ${apt_pkgs[*]}"
    # Keep the package scripts from starting a system-wide nginx on port 80:
    # the tests start their own nginx instances on loopback.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null
    rc=0
    $SUDO apt-get install -y -q --no-install-recommends "${apt_pkgs[@]}" >/dev/null || rc=$?
    if [ "$policy_added" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    [ "$rc" = 0 ] || { log "apt-get install failed ($rc)"; exit "$rc"; }
fi
# In case a package script did start one anyway, stop the system nginx (not ours).
if [ -f /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    log "stopping the system nginx started by the package"
    $SUDO nginx -s stop 2>/dev/null || true
fi

# ---------------------------------------------------------------- python venv
# The interpreter ruwsgi embeds (the machine's python3, 3.11).
PY="${RUWSGI_PYTHON:-}"
if [ -z "$PY" ]; then
    PY=$(python3 -c 'import sys; print(sys.executable)')
fi
if [ ! -x .venv/bin/python ]; then
    log "creating .venv from $PY"
    "$PY" -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"

install_reqs() {
    # $1 = stamp name, rest = requirement specs. Skips pip when the same set is installed.
    local name=$1; shift
    local stamp=".venv/.ruwsgi-$name.stamp"
    local want
    want=$(printf '%s\n' "$@")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    log "pip install ($name): $*"
    "$VPY" -m pip install -q --disable-pip-version-check "$@"
    printf '%s' "$want" > "$stamp"
}

TEST_REQS=(
    "pytest>=8,<10"
    "pytest-timeout>=2,<3"
    "requests>=2.31,<3"
    "flask>=3,<4"
    "django>=5,<6"
    "greenlet>=3,<4"
    "pyuwsgi>=2.0.28,<2.1"
    "uwsgitop>=0.12,<1"
    "prometheus-client>=0.20,<1"
)
install_reqs test "${TEST_REQS[@]}"

if [ "$BENCH" = 1 ]; then
    BENCH_REQS=(
        "gunicorn>=23"
        "gevent>=24"
        "granian>=2,<3"
        "bjoern>=3.2,<4"
        "redis>=5"
    )
    install_reqs bench "${BENCH_REQS[@]}"
fi

log "ok (venv: .venv, python: $("$VPY" -c 'import sys; print(sys.version.split()[0])'))"
