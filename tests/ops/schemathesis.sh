#!/usr/bin/env bash
# Runs schemathesis (every check) against the demo: simulators and gateway on loopback, on free
# ports, with a token chosen here. Bounded: examples per operation, and a wall-clock cap.
# Usage: tests/ops/schemathesis.sh <inventory-gateway binary> <schemathesis executable>
set -euo pipefail
bin="$1"
st="$2"
# Absolute paths: the run happens in a scratch directory, where schemathesis and hypothesis
# keep their caches (not in the work tree).
bin="$(realpath "$bin")"
st="$(realpath -s "$st")"
scratch="$(mktemp -d)"
token="st-ci-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
out="$(mktemp)"
# schemathesis sends hundreds of requests with no or a wrong token from this one address, by
# design; the failed-authentication limiter would answer them 429 after its burst (its own
# behaviour is tested in tests/api/rate_limit.rs), so its burst is raised for this run.
IGW__SERVER__RATE_LIMIT__FAILED_AUTH_BURST=1000000 \
"$bin" demo --port 0 --oneview-port 0 --ucsm-port 0 --ome-port 0 --ucs-central-port 0 --intersight-port 0 --redfish-port 0 --token "$token" >"$out" 2>&1 &
demo=$!
trap 'kill "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; rm -rf "$out" "$scratch"' EXIT
gateway=""
for _ in $(seq 1 300); do
  gateway="$(grep -oE 'gateway +http://127\.0\.0\.1:[0-9]+' "$out" | awk '{print $2}' || true)"
  [ -n "$gateway" ] && break
  kill -0 "$demo" 2>/dev/null || { cat "$out"; echo "demo exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$gateway" ] || { cat "$out"; echo "demo printed no gateway URL" >&2; exit 1; }
echo "schemathesis against $gateway"
# --checks all includes ST202 (schema-valid request rejected), ST204 (undeclared method: 405
# with Allow) and the response-conformance checks. No exclusions.
cd "$scratch"
timeout 900 "$st" run "$gateway/api-docs/openapi.json" \
  --checks all \
  -H "Authorization: Bearer $token" \
  --max-examples 100 \
  --workers 2 \
  --no-color
