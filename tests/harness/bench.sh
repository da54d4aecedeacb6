#!/usr/bin/env bash
# The scan benchmark (see BENCHMARKS.md): starts isolated engines, then runs
# `cargo bench --bench scan` against engine A (Engine 20.10, API 1.41) and
# engine B (Engine 26.1, API 1.45), and stops the engines again. The host's
# /var/run/docker.sock is never used. Needs root (or sudo) on Debian 12, like
# run-tests.sh. Takes a few minutes: building the benchmark in release mode and
# loading 1,000 fixture images into each engine.
#
# Optional: EXAPP_JANITOR_BENCH_RUNS (warm rescans and `df -v` runs, default 5),
# EXAPP_JANITOR_BENCH_COLD_RUNS (cold scans, default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Nothing may reach the host's daemon: the docker CLI always gets -H.
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export SQLX_OFFLINE=true

bash tests/harness/engines.sh install

# Build before starting the engines, so a build error costs nothing else.
cargo bench --locked --bench scan --no-run

root=$(mktemp -d /tmp/exapp-janitor-bench.XXXXXX)
trap 'bash tests/harness/engines.sh stop "$root"' EXIT
bash tests/harness/engines.sh start "$root"
# shellcheck disable=SC1091
. "$root/env"

echo "machine: $(nproc) CPUs, $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory," \
  "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
dirty=$(git status --porcelain -- src migrations .sqlx 2>/dev/null | head -c1)
echo "source: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ with uncommitted changes in src/}"

for engine in A B; do
  var="EXAPP_JANITOR_TEST_ENGINE_${engine}_SOCK"
  echo
  echo "=== engine $engine ==="
  EXAPP_JANITOR_BENCH_ENGINE=${!var} cargo bench --locked --bench scan
done
