#!/usr/bin/env bash
# The benchmarks (see BENCHMARKS.md): builds `cargo bench --bench scan`,
# `--bench cleanup` and `--bench load`, starts isolated engines, and runs:
#
# * the scan benchmark's fixture (tests/harness/bench_fixture.py, issue #8:
#   2,000 images, 40 ExApps, 200 containers) split over two daemons: part a
#   on engine A (Engine 20.10, API 1.41), part b on engine B (Engine 26.1,
#   API 1.45), 1,000 images and 100 containers each; on each, the scan
#   benchmark (cold and warm scan against `docker system df -v`) and the
#   cleanup benchmark, with tiny images (300) and with realistic ones (30 of
#   50 MB);
# * the scan benchmark's scaling mode on engine C (a spare Engine 20.10): the
#   fixture grown to 250, 500, 1,000 and 2,000 images on one daemon, a scan
#   measured at each size;
# * the load benchmark: the server with engines A and B (2,000 images).
#
# Then it stops the engines, starts fresh ones (in another root dir) and runs
# the whole-process benchmarks of issue 18:
#
# * tests/harness/bench-process.sh: a warm `exapp-janitor scan --json` as a
#   process against the two bare list calls (one curl), `docker system df -v`
#   and `GET /system/df`, at 300 and 1,000 images, on engines A and B;
# * tests/harness/bench-fleet.sh: 100 daemon names over engines A and B (50
#   each, every engine holding 1,000 images): the CLI's cold and warm scan of
#   all, the server's rescan of all, its peak RSS, and the API and pages
#   under 32 clients during and after a scan.
#
# EXAPP_JANITOR_BENCH_SECTIONS picks what runs: "library process fleet" (the
# default; "library" is everything above). The host's /var/run/docker.sock is never
# used. Needs root (or sudo) on Debian 12, like run-tests.sh. Takes about ten
# minutes: building in release mode, and loading 4,000 fixture images in all
# (1,000 into A, 1,000 into B, 2,000 into C).
#
# Optional: EXAPP_JANITOR_BENCH_RUNS (warm rescans and `df -v` runs, default 10),
# EXAPP_JANITOR_BENCH_COLD_RUNS (cold scans, default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Nothing may reach the host's daemon: the docker CLI always gets -H.
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export SQLX_OFFLINE=true

bash tests/harness/engines.sh install

# Build once, before starting the engines (a build error costs nothing else),
# and run that one binary against both engines: they measure the same code
# even if the sources change meanwhile. This is what `cargo bench --bench scan`
# runs (cargo passes --bench).
dirty=$(git status --porcelain -- src migrations .sqlx 2>/dev/null | head -c1)
source="commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ with uncommitted changes in src/}"
sections=${EXAPP_JANITOR_BENCH_SECTIONS:-library process fleet}
has() { [[ " $sections " == *" $1 "* ]]; }
built=$(cargo bench --locked --bench scan --bench cleanup --bench load --no-run --message-format=json)
# The release binary, for the whole-process benchmarks: built with the
# benchmarks (the load benchmark runs it), with the same features (a plain
# `cargo build --release` would build every dependency again without the
# dev-dependencies' features).
janitor_bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/exapp-janitor
executable() {
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1" <<< "$built"
}
bench=$(executable scan)
cleanup_bench=$(executable cleanup)
load_bench=$(executable load)
[ -x "$bench" ] && [ -x "$cleanup_bench" ] && [ -x "$load_bench" ] || { echo "bench.sh: the benchmarks did not build" >&2; exit 1; }

echo "machine: $(nproc) CPUs, $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory," \
  "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "source: $source"

root=
trap '[ -z "$root" ] || bash tests/harness/engines.sh stop "$root"' EXIT
if has library; then
root=$(mktemp -d /tmp/exapp-janitor-bench.XXXXXX)
# No HaRP: no benchmark uses it, and it would hold 127.0.0.1:8200 (one HaRP
# per machine) for the benchmarks' ten minutes.
EXAPP_JANITOR_HARNESS_HARP=0 bash tests/harness/engines.sh start "$root"
# shellcheck disable=SC1091
. "$root/env"

for engine in A B; do
  var="EXAPP_JANITOR_TEST_ENGINE_${engine}_SOCK"
  part=${engine,,}  # engine A gets part a, B part b
  echo
  echo "=== engine $engine: fixture part $part ==="
  EXAPP_JANITOR_BENCH_ENGINE=${!var} EXAPP_JANITOR_BENCH_PART=$part "$bench" --bench
  echo
  EXAPP_JANITOR_BENCH_ENGINE=${!var} "$cleanup_bench" --bench
  echo
  # Realistic sizes: 30 versions of 50 MB each (1.5 GB per fixture).
  EXAPP_JANITOR_BENCH_ENGINE=${!var} EXAPP_JANITOR_BENCH_IMAGES=30 EXAPP_JANITOR_BENCH_IMAGE_MB=50 \
    "$cleanup_bench" --bench
done

# Engine C holds nothing yet: the scaling steps grow the fixture on it.
echo
echo "=== engine C: scan scaling, 250 to 2,000 images on one daemon ==="
EXAPP_JANITOR_BENCH_ENGINE=$EXAPP_JANITOR_TEST_ENGINE_C_SOCK EXAPP_JANITOR_BENCH_SCALE=250,500,1000,2000 "$bench" --bench

# Engines A and B now hold the scan fixture's two parts: 2,000 images, 200
# containers (and what the cleanup benchmark left).
echo
echo "=== load: the server with both engines ==="
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || sudo apt-get install -y -qq wrk >/dev/null; }
EXAPP_JANITOR_BENCH_ENGINES="$EXAPP_JANITOR_TEST_ENGINE_A_SOCK,$EXAPP_JANITOR_TEST_ENGINE_B_SOCK" "$load_bench" --bench
bash tests/harness/engines.sh stop "$root"
root=
fi

if has process || has fleet; then
  # Fresh engines: the process benchmark grows the fixture from 300 to 1,000
  # images on each, and the fleet benchmark measures on what it leaves.
  root=$(mktemp -d /tmp/exapp-janitor-bench.XXXXXX)
  EXAPP_JANITOR_HARNESS_HARP=0 bash tests/harness/engines.sh start "$root"
  # shellcheck disable=SC1091
  . "$root/env"
  engines=("A=$EXAPP_JANITOR_TEST_ENGINE_A_SOCK" "B=$EXAPP_JANITOR_TEST_ENGINE_B_SOCK")
  if has process; then
    echo
    echo "=== whole processes: scan --json vs the list calls, df -v, GET /system/df ==="
    bash tests/harness/bench-process.sh "$janitor_bin" "${engines[@]}"
  fi
  if has fleet; then
    # The fleet needs the 1,000-image fixture on each engine: bench-process.sh
    # leaves it there; without it, load it first (its measurements are quick).
    has process || bash tests/harness/bench-process.sh "$janitor_bin" "${engines[@]}" >/dev/null
    echo
    echo "=== fleet: 100 daemon names over engines A and B ==="
    bash tests/harness/bench-fleet.sh "$janitor_bin" "${engines[@]}"
  fi
fi
