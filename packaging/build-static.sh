#!/bin/sh
# The static release binary that the container image and the Debian package
# hold: glibc linked in (crt-static), so it runs on an empty base image and
# on any x86_64 Linux. Used by the Dockerfile's build stage and by the test
# suite (tests/harness/run-tests.sh), so both build it the same way.
#
#   packaging/build-static.sh [CARGO BUILD ARGS...]
#   -> ${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/exapp-janitor
#
# --target is what keeps crt-static off the build scripts and proc macros,
# which must stay dynamic to be loaded by the compiler.
set -eu
cd "$(dirname "$0")/.."
# Queries are checked against the committed .sqlx data: no database needed.
export SQLX_OFFLINE=true
# No symbol table: a fifth of the binary, and what keeps the image under 25 MB.
export CARGO_PROFILE_RELEASE_STRIP=symbols
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  exec cargo build --release --locked --target x86_64-unknown-linux-gnu "$@"
