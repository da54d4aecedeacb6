#!/usr/bin/env bash
# Refreshes the README's screenshots: runs the browser test (which writes
# them under the cargo target directory, never into tracked files) on fresh
# engines, then copies them into static/screenshots/ for a commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/harness/run-tests.sh --test browser
from="${CARGO_TARGET_DIR:-target}/tmp/screenshots"
for name in overview overview-phone images images-phone run run-phone; do
  cp "$from/$name.png" "static/screenshots/$name.png"
done
echo "screenshots: copied from $from into static/screenshots/; review them and commit" >&2
