#!/usr/bin/env bash
# Fetches the pinned htmx release again from the npm package `htmx.org` and
# checks it against the sha256 the test suite pins (tests/static_assets.rs).
# To upgrade: change VERSION, run this, and update the test's hash and version.
set -euo pipefail
VERSION=2.0.11
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$VERSION" >/dev/null)
tar -xzf "$tmp"/htmx.org-"$VERSION".tgz -C "$tmp" package/dist/htmx.min.js
cp "$tmp/package/dist/htmx.min.js" "$here/htmx.min.js"
echo "htmx $VERSION: $(sha256sum "$here/htmx.min.js" | cut -d' ' -f1)"
