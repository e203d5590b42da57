#!/usr/bin/env bash
# Cost of Prometheus metrics: `pywebtransport bench` against `pywebtransport serve` with and
# without --metrics-port, alternating, 3 repetitions (new stream per request, and datagrams).
# Run from a checkout with the package installed:  flock /tmp/bench.lock bash bench/metrics_cost.sh
set -u
PY=${PYTHON:-python3}
for rep in 1 2 3; do
  for mode in off on; do
    port=$((15000 + RANDOM % 1000))
    extra=()
    [ "$mode" = on ] && extra=(--metrics-port $((17000 + RANDOM % 1000)))
    "$PY" -m pywebtransport.cli serve --port "$port" --duration 40 "${extra[@]}" >/dev/null 2>&1 &
    srv=$!
    sleep 2
    for sc in echo datagram; do
      "$PY" -m pywebtransport.cli bench "https://127.0.0.1:$port/" -k -s "$sc" -c 4 -m 2 -D 4 --json 2>/dev/null |
        "$PY" -c "import json,sys; d=json.load(sys.stdin); print('rep $rep metrics $mode $sc', d['rate_per_s'], '/s p50', d['latency_ms']['p50'], 'ms errors', d['errors'])"
    done
    kill "$srv"; wait "$srv" 2>/dev/null
  done
done
