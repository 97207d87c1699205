#!/usr/bin/env bash
# The peer of the end-to-end benchmark (benches/e2e.rs): the community Python
# SDK `claude-compliance-sdk` exporting the activity feed to NDJSON.
#
#   bench/peer-sdk.sh BASE_URL OUT.ndjson
#
# Installs the SDK from PyPI into a virtual environment under the cargo target
# directory (once), then runs bench/peer_sdk_export.py against BASE_URL (the
# simulator: `claudit simulate --rate-limit 0`). The export itself is pinned to
# the CPU in PEER_CPU (default 0, the core claudit is measured on) when taskset
# exists. The last line of output is machine-readable:
#
#   PEER_RESULT activities=N wall_s=S cpu_s=C peak_rss_kb=K
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BASE_URL OUT.ndjson" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../target}
venv=$target/peer-sdk-venv
# Pinned so every run measures the same code.
sdk="claude-compliance-sdk==0.3.0"

if ! "$venv/bin/python" -c 'import claude_compliance_sdk' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$sdk" >&2
fi

pin=()
if command -v taskset >/dev/null 2>&1; then
  pin=(taskset -c "${PEER_CPU:-0}")
fi
export ANTHROPIC_COMPLIANCE_ACCESS_KEY=${ANTHROPIC_COMPLIANCE_ACCESS_KEY:-sk-ant-api01-simulator}
exec "${pin[@]}" "$venv/bin/python" "$here/peer_sdk_export.py" "$1" "$2"
