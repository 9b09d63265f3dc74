#!/usr/bin/env bash
# `login --no-browser` for the MCP URL the conformance suite appends last.
# MCP_CONFORMANCE_CONTEXT, where the suite sets it, names a client
# registered in advance (its id and secret).
set -euo pipefail
bin="$1"
url="${!#}"
if [ -n "${MCP_CONFORMANCE_CONTEXT:-}" ]; then
  id="$(python3 -c 'import json,os; print(json.loads(os.environ["MCP_CONFORMANCE_CONTEXT"]).get("client_id") or "")')"
  secret="$(python3 -c 'import json,os; print(json.loads(os.environ["MCP_CONFORMANCE_CONTEXT"]).get("client_secret") or "")')"
  [ -n "$id" ] && export BLOOMREACH_LOOMI_CLIENT_ID="$id"
  [ -n "$secret" ] && export BLOOMREACH_LOOMI_CLIENT_SECRET="$secret"
fi
exec "$bin" --loomi-url "$url" login --no-browser
