#!/usr/bin/env bash
# Prints the path of a verified Apache Livy $LIVY_VERSION binary release (zip or unpacked directory), or
# nothing and exit 1 when the machine has none. Livy 0.8+ is in no package registry, so it comes from:
#   1. LIVY_DISTRIBUTION, when set (taken as given: a zip or an unpacked LIVY_HOME);
#   2. shared/livy/apache-livy-${LIVY_VERSION}_2.12-bin.zip in the repository's folder or any folder above it
#      (the project keeps a mirror there; CI clones beside it), checked against the .sha512 beside it and
#      copied into the cache, so that a clone elsewhere (a temp dir) still finds it;
#   3. that verified copy in the cache (checked again against the digest kept with it).
# A zip whose digest does not match is refused with a message, never used.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${LIVY_TESTBED_CACHE:-$HOME/.cache/livy-operator-testbed}
name="apache-livy-${LIVY_VERSION}_2.12-bin.zip"
kept="$CACHE/dist/$name"

if [ -n "${LIVY_DISTRIBUTION:-}" ]; then
  [ -e "$LIVY_DISTRIBUTION" ] || { echo "[testbed-build] LIVY_DISTRIBUTION=$LIVY_DISTRIBUTION does not exist" >&2; exit 1; }
  echo "$LIVY_DISTRIBUTION"; exit 0
fi

# sha512 of $1 equals the digest in $2 (sha512sum format: "<hex>  <name>")
matches() {
  local want got
  want=$(awk '{print $1; exit}' "$2")
  got=$(sha512sum "$1" | awk '{print $1}')
  [ -n "$want" ] && [ "$want" = "$got" ]
}

dir=$(cd "$here/../../.." && pwd)
while :; do
  zip="$dir/shared/livy/$name"
  if [ -f "$zip" ] && [ -f "$zip.sha512" ]; then
    if ! matches "$zip" "$zip.sha512"; then
      echo "[testbed-build] $zip does not match $zip.sha512: not used" >&2
    else
      if ! { [ -f "$kept" ] && [ -f "$kept.sha512" ] && cmp -s "$zip.sha512" "$kept.sha512"; }; then
        # copy under a temporary name, then rename: concurrent builds never see half a zip
        mkdir -p "$CACHE/dist"
        tmp=$(mktemp "$CACHE/dist/.$name.XXXXXX")
        cp "$zip" "$tmp" && cp "$zip.sha512" "$tmp.sha512" && chmod 644 "$tmp" "$tmp.sha512"
        if matches "$tmp" "$tmp.sha512"; then
          mv -f "$tmp.sha512" "$kept.sha512" && mv -f "$tmp" "$kept"
        else
          rm -f "$tmp" "$tmp.sha512"
        fi
      fi
      echo "$zip"; exit 0
    fi
  fi
  [ "$dir" = / ] && break
  dir=$(dirname "$dir")
done

if [ -f "$kept" ] && [ -f "$kept.sha512" ]; then
  if matches "$kept" "$kept.sha512"; then echo "$kept"; exit 0; fi
  echo "[testbed-build] the cached $kept does not match its digest: not used" >&2
fi
exit 1
