#!/usr/bin/env bash
# Create one peer's environment: benchmarks/peers/make_env.sh NAME PACKAGE...
# Peers live in .peers/NAME, never in the library's own environment. torch stays pinned to the
# CPU wheel through constraints.txt so no peer pulls a CUDA build.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
name="$1"; shift
env="$root/.peers/$name"
if [ -f "$env/.installed" ]; then exit 0; fi
python3 -m venv "$env"
"$env/bin/pip" install -q -c "$root/constraints.txt" "$@"
touch "$env/.installed"
echo "peer environment ready: $env"
