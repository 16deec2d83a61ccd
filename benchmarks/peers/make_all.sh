#!/usr/bin/env bash
# Create every peer environment used by the benchmarks (idempotent).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for f in "$here"/*.peers; do
  while read -r name pkgs; do
    case "$name" in ""|\#*) continue ;; esac
    # shellcheck disable=SC2086
    bash "$here/make_env.sh" "$name" $pkgs
  done < "$f"
done
