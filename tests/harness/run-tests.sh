#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts isolated Docker
# engines (never the host's /var/run/docker.sock), runs every test against
# them, and stops them again. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/harness/engines.sh install
root=$(mktemp -d /tmp/exapp-janitor-engines.XXXXXX)
trap 'bash tests/harness/engines.sh stop "$root"' EXIT
bash tests/harness/engines.sh start "$root"
# shellcheck disable=SC1091
. "$root/env"

# Queries are checked against the committed .sqlx data: no database needed to build.
export SQLX_OFFLINE=true
cargo test --locked --all-targets "$@"
