#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts isolated Docker
# engines (never the host's /var/run/docker.sock), runs every test against
# them, and stops them again.
#
#   run-tests.sh            every test. The binaries named in
#                           EXAPP_JANITOR_TEST_ALONE each run alone on engines
#                           started just for them; all the others share one set.
#   run-tests.sh ARGS...    `cargo test ARGS...` on fresh engines, e.g.
#                           `--test exactness` runs that one binary alone.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The order-sensitive binaries: they stop engine C, clean whole daemons at a
# minimum age of 0, or measure (or page through) a whole engine, so what they see
# would depend on what other binaries did on the same engines before them.
# Fresh engines of their own cost a few seconds each. Set the variable to
# change the list; empty runs everything on one set of engines.
default_alone="browser cleanup cleanup_bytes cleanup_paths daemons_api exactness faults harp pagination update"
alone=${EXAPP_JANITOR_TEST_ALONE-$default_alone}
for name in $alone; do
  if [ ! -f "tests/$name.rs" ]; then
    echo "run-tests: EXAPP_JANITOR_TEST_ALONE names '$name', but there is no tests/$name.rs" >&2
    exit 1
  fi
done

# A full build of the suite takes about 2 GB under target/, the static
# release build (packaging tests) about 2 GB more, and the engines' fixtures
# a few hundred MB. Running out of disk midway shows up as a linker
# "Bus error"; say it plainly instead, before anything starts.
need_mib=${EXAPP_JANITOR_TEST_MIN_FREE_MIB:-5120}
free_mib=$(( $(df -Pk . | awk 'NR == 2 { print $4 }') / 1024 ))
if [ "$free_mib" -lt "$need_mib" ]; then
  echo "run-tests: only $free_mib MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); the suite needs about $need_mib MiB (free some, or set EXAPP_JANITOR_TEST_MIN_FREE_MIB)" >&2
  exit 1
fi
# A one-off full run gains nothing from incremental state, which doubles the
# size of target/; set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Each phase says how long it took, so the suite's time can be watched.
suite_started=$SECONDS
phase_started=$SECONDS
phase() {
  echo "run-tests: $1 took $((SECONDS - phase_started)) s" >&2
  phase_started=$SECONDS
}

# Engines started for one phase and stopped after it (or on any exit).
root=
# After a failed phase: the engines' and HaRP's logs go to target/test-logs/
# (stop_engines removes the root) and their last lines to the output, which
# is all a CI run leaves.
keep_logs() {
  [ -n "$root" ] || return 0
  local dest
  dest=target/test-logs/$1
  mkdir -p "$dest"
  (cd "$root" && find . -maxdepth 2 -name '*.log' -size +0 -print0 | xargs -0r cp --parents -t "$OLDPWD/$dest")
  for f in "$dest"/harp/agent.log "$dest"/harp/haproxy.log "$dest"/harp/bridge.log; do
    [ -s "$f" ] || continue
    echo "run-tests: last lines of $f:" >&2
    tail -n 40 "$f" >&2
  done
}
stop_engines() {
  if [ -n "$root" ]; then
    bash tests/harness/engines.sh stop "$root"
    root=
  fi
}
trap stop_engines EXIT
start_engines() {
  root=$(mktemp -d /tmp/exapp-janitor-engines.XXXXXX)
  bash tests/harness/engines.sh start "$root"
  # shellcheck disable=SC1091
  . "$root/env"
}

bash tests/harness/engines.sh install
phase "install"
# Queries are checked against the committed .sqlx data: no database needed to build.
export SQLX_OFFLINE=true

# The static release binary that the container image and the Debian package
# hold (tests/packaging.rs, tests/debian_package.rs): built here, so that its
# time is counted as build time; the tests find it fresh.
build_static() {
  bash packaging/build-static.sh --quiet
  phase "static release build"
}

if [ $# -gt 0 ]; then
  cargo test --locked --no-run "$@"
  phase "build"
  case " $* " in
    *" packaging "*|*" debian_package "*) build_static ;;
  esac
  start_engines
  phase "engines"
  cargo test --locked "$@"
  phase "tests"
  exit 0
fi

cargo test --locked --all-targets --no-run
phase "build"
build_static

# Everything but the order-sensitive binaries, on one set of engines.
together=(--lib --bins --benches)
for file in tests/*.rs; do
  name=$(basename "$file" .rs)
  case " $alone " in
    *" $name "*) ;;
    *) together+=(--test "$name") ;;
  esac
done
failed=()
start_engines
phase "engines"
# --no-fail-fast: one failing binary must not hide how the others fare.
cargo test --locked --no-fail-fast "${together[@]}" || { failed+=("the shared engines' binaries"); keep_logs shared; }
stop_engines
phase "tests on shared engines"

for name in $alone; do
  start_engines
  # HaRP's agent decides every call in Python: fifteen HaRP tests building
  # images at once on two cores left a call unanswered for 15-30 s in two
  # CI runs. Four at a time, on a HaRP of their own, keep what they test.
  if [ "$name" = harp ]; then
    RUST_TEST_THREADS=${EXAPP_JANITOR_TEST_HARP_THREADS:-4} cargo test --locked --test "$name" || { failed+=("$name"); keep_logs "$name"; }
  else
    cargo test --locked --test "$name" || { failed+=("$name"); keep_logs "$name"; }
  fi
  stop_engines
  phase "tests alone: $name"
done

echo "run-tests: all phases took $((SECONDS - suite_started)) s" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "run-tests: failed: ${failed[*]}" >&2
  exit 1
fi
