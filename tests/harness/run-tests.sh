#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts isolated Docker
# engines (never the host's /var/run/docker.sock), runs every test against
# them, and stops them again. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

# A full build of the suite takes about 2 GB under target/ and the engines'
# fixtures a few hundred MB. Running out of disk midway shows up as a linker
# "Bus error"; say it plainly instead, before anything starts.
need_mib=${EXAPP_JANITOR_TEST_MIN_FREE_MIB:-3072}
free_mib=$(( $(df -Pk . | awk 'NR == 2 { print $4 }') / 1024 ))
if [ "$free_mib" -lt "$need_mib" ]; then
  echo "run-tests: only $free_mib MiB free on $(df -P . | awk 'NR == 2 { print $6 }'); the suite needs about $need_mib MiB (free some, or set EXAPP_JANITOR_TEST_MIN_FREE_MIB)" >&2
  exit 1
fi
# A one-off full run gains nothing from incremental state, which doubles the
# size of target/; set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Each phase says how long it took, so the suite's time can be watched.
phase_started=$SECONDS
phase() {
  echo "run-tests: $1 took $((SECONDS - phase_started)) s" >&2
  phase_started=$SECONDS
}

bash tests/harness/engines.sh install
phase "install"
# Queries are checked against the committed .sqlx data: no database needed to build.
export SQLX_OFFLINE=true
cargo test --locked --all-targets --no-run "$@"
phase "build"
root=$(mktemp -d /tmp/exapp-janitor-engines.XXXXXX)
trap 'bash tests/harness/engines.sh stop "$root"' EXIT
bash tests/harness/engines.sh start "$root"
# shellcheck disable=SC1091
. "$root/env"
phase "engines"
cargo test --locked --all-targets "$@"
phase "tests"
