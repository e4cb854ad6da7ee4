#!/usr/bin/env bash
# Fetch axe-core (the accessibility engine the console's browser tests inject into every page)
# from the npm registry, pinned by version and checked against its sha512 integrity.
# Usage: scripts/fetch-axe.sh [DEST]   (default .venv/share/axe-core; git-ignored with .venv)
set -euo pipefail
VERSION=4.14.1
INTEGRITY=sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
dest=${1:-.venv/share/axe-core}
if [ -f "$dest/axe.min.js" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "fetch-axe: npm is missing (scripts/system-deps.sh installs it)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$VERSION" >/dev/null)
tgz="$tmp/axe-core-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
  echo "fetch-axe: axe-core $VERSION does not match its pinned integrity ($got)" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/axe.min.js package/LICENSE
mkdir -p "$dest"
cp "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$dest/"
echo "$VERSION" > "$dest/VERSION"
echo "axe-core $VERSION in $dest"
