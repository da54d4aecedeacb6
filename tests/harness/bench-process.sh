#!/usr/bin/env bash
# Process-level scan benchmark (issue 18, goals 1 and 4): what a user pays
# for `exapp-janitor scan --json` as a whole process (start, connection,
# SQLite, the Engine's answers), next to the floor and the baselines, each a
# whole process too:
#
#   scan --json    a warm `exapp-janitor scan --json` (one daemon, scanned before)
#   lists          the two list calls a scan cannot skip, in one curl process:
#                  GET /images/json?all=1 and GET /containers/json?all=1
#   df -v          `docker system df -v`
#   GET /system/df the Engine's own share of df -v, by curl on the socket
#
# Goals: scan ≤ 1.3× the lists, < 0.5× `df -v`, at 300 and at 1,000 images
# (the scan fixture's first N images, tests/harness/bench_fixture.py
# scale:N), on every engine given. Interleaved rounds
# (tests/harness/bench_interleave.py); median, min, max and IQR.
#
#   bench-process.sh BINARY NAME=unix:///…/docker.sock [NAME=…]
#
# The engines must be isolated ones holding nothing but this fixture (or
# less: what is missing is loaded, growing 300 → 1,000); they are left
# holding the 1,000-image fixture (for bench-fleet.sh). Never the host's
# socket. EXAPP_JANITOR_BENCH_PROCESS_RUNS (default 15) rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

bin=$1; shift
[ -x "$bin" ] || { echo "bench-process.sh: $bin is not an executable" >&2; exit 1; }
runs=${EXAPP_JANITOR_BENCH_PROCESS_RUNS:-15}
here=tests/harness
work=$(mktemp -d /tmp/exapp-janitor-bench-process.XXXXXX)
trap 'rm -rf "$work"' EXIT

# load_fixture SOCKET_URL SPEC: loads the images of SPEC the engine lacks and
# creates its missing containers.
load_fixture() {
  local url=$1 spec=$2 dk=(docker -H "$1")
  local plan label
  plan=$(python3 "$here/bench_fixture.py" plan "$spec")
  label=$(python3 -c 'import json,sys; p=json.loads(sys.argv[1]); print(p["label"]+"="+p["label_value"])' "$plan")
  local present missing
  present=$("${dk[@]}" images --filter "label=$label" --format '{{.Repository}}:{{.Tag}}' \
    | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))')
  missing=$(python3 -c '
import json, sys
p = json.loads(sys.argv[1]); have = set(json.loads(sys.argv[2]))
want = set(p["images"]) | {t for ts in p["extra_tags"].values() for t in ts}
print(len(want - have))' "$plan" "$present")
  if [ "$missing" -gt 0 ]; then
    local started=$SECONDS
    python3 "$here/bench_fixture.py" write "$spec" "$work/images.tar" <<< "$present" >/dev/null
    "${dk[@]}" load -q -i "$work/images.tar" >/dev/null
    rm -f "$work/images.tar"
    echo "fixture $spec: loaded $missing references in $((SECONDS - started)) s"
  fi
  local existing
  existing=$("${dk[@]}" ps -a --format '{{.Names}}')
  python3 -c '
import json, sys
existing = set(sys.argv[2].split())
for c in json.loads(sys.argv[1])["containers"]:
    if c["name"] not in existing:
        print(c["name"], c["image"])' "$plan" "$existing" \
  | while read -r name image; do
      "${dk[@]}" create --network none --name "$name" "$image" sleep 1 >/dev/null
    done
}

echo "process-level scan benchmark: $runs interleaved rounds, after 2 warm-up rounds"
echo "binary: $bin ($("$bin" --version 2>/dev/null || echo '?'))"
for arg in "$@"; do
  name=${arg%%=*} url=${arg#*=}
  sock=${url#unix://}
  [ -S "$sock" ] && [ "$sock" != /var/run/docker.sock ] || { echo "bench-process.sh: $url is not an isolated engine's socket" >&2; exit 1; }
  version=$(docker -H "$url" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')
  for n in 300 1000; do
    echo
    echo "=== engine $name ($version): $n images ==="
    load_fixture "$url" "scale:$n"
    images=$(docker -H "$url" images -aq --no-trunc | sort -u | wc -l)
    containers=$(docker -H "$url" ps -aq | wc -l)
    echo "engine holds $images images, $containers containers"
    data="$work/data-$name-$n"
    env -u EXAPP_JANITOR_DATA_DIR "$bin" --data-dir "$data" daemon add bench "$url" >/dev/null
    env -u EXAPP_JANITOR_DATA_DIR "$bin" --data-dir "$data" scan --json >/dev/null 2>&1  # cold: fills the layer cache
    python3 "$here/bench_interleave.py" --runs "$runs" --warmup 2 \
      --ratio 'scan --json / lists <= 1.3' \
      --ratio 'scan --json / df -v < 0.5' \
      --ratio 'scan --json / GET /system/df' \
      'scan --json' "'$bin' --data-dir '$data' scan --json" \
      'lists' "curl -sf --unix-socket '$sock' -o /dev/null -o /dev/null 'http://x/images/json?all=1' 'http://x/containers/json?all=1'" \
      'df -v' "docker -H '$url' system df -v" \
      'GET /system/df' "curl -sf --unix-socket '$sock' -o /dev/null 'http://x/system/df'"
  done
done
