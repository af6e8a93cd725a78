#!/usr/bin/env bash
# Operations, checked with the real tools: `civicsift run` against dev-broker, its
# /metrics checked by promtool and scraped by a real Prometheus server, /healthz and
# /readyz, a SIGHUP reload that fails (old policy kept, failure counted, file and rule
# logged) and one that succeeds, JSON logs free of comment text and personal data,
# and deploy/ checked against the live exposition. Needs CIVICSIFT and SOURCE_DIR.
set -euo pipefail
bin=${CIVICSIFT:?}
src=${SOURCE_DIR:?}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export CIVICSIFT_CACHE_DIR="$work/cache"
fail() { echo "FAIL $*"; exit 1; }
http() { python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        sys.stdout.write(f"{r.status}\n" + r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(f"{e.code}\n")
except Exception:
    sys.stdout.write("000\n")
PY
}
status() { http "$1" | head -1; }

"$bin" dev-broker --port 0 --partitions 3 > "$work/broker.out" 2> "$work/broker.err" &
pids+=($!)
for _ in $(seq 50); do grep -q bootstrap "$work/broker.out" 2>/dev/null && break; sleep 0.1; done
bootstrap=$(sed -n 's/^bootstrap.servers=//p' "$work/broker.out")
[[ -n "$bootstrap" ]] || fail "dev-broker printed no bootstrap line"

cp -r "$src/tests/data/policy" "$work/patterns"
cat > "$work/civicsift.yaml" <<YAML
brokers: $bootstrap
group: metrics-scrape
metrics_address: 127.0.0.1:0
statistics_interval_ms: 500
log_format: json
log_level: info
threads: 2
# A consumer-only key: the producer's note that it ignores it is librdkafka's own log
# line, which must come out as JSON too (checked with every line below).
kafka: {fetch.wait.max.ms: "10"}
YAML
# A librdkafka property it does not know is a configuration error: exit 2, naming it.
sed 's/^kafka: .*/kafka: {no.such.property: "1"}/' "$work/civicsift.yaml" > "$work/bad.yaml"
status_code=0
"$bin" run --config "$work/bad.yaml" --patterns "$work/patterns" 2> "$work/bad.log" || status_code=$?
[[ $status_code == 2 ]] && grep -q 'kafka.no.such.property' "$work/bad.log" ||
  fail "an unknown kafka property: exit $status_code, $(cat "$work/bad.log")"
echo "ok an unknown kafka property exits 2"

"$bin" run --config "$work/civicsift.yaml" --patterns "$work/patterns" 2> "$work/run.log" &
run_pid=$!
pids+=($run_pid)
# Port 0: the kernel picks a free port and the log names it.
for _ in $(seq 100); do grep -q '"metrics on ' "$work/run.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*"metrics on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/run.log" | head -1)
[[ "$port" =~ ^[1-9][0-9]*$ ]] || fail "the log names no metrics port"
for _ in $(seq 100); do [[ $(status "http://127.0.0.1:$port/healthz") == 200 ]] && break; sleep 0.1; done
[[ $(status "http://127.0.0.1:$port/healthz") == 200 ]] || fail "/healthz did not answer 200"
echo "ok /healthz"

# Comments full of personal data, and a line that is not JSON.
secrets=("Jane Q. Citizen" "519-555-0147" "jane.citizen@example.com" "046 454 286" "4111 1111 1111 1111" "42 Elm Street")
n=400
python3 - "$n" > "$work/in.jsonl" <<'PY'
import json, sys
texts = ["Call Jane Q. Citizen at 519-555-0147 or jane.citizen@example.com",
         "my SIN is 046 454 286 and card 4111 1111 1111 1111",
         "she lives at 42 Elm Street, go tell her what you think of this damn council",
         "the park on Main is lovely this time of year"]
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"m{i}", "tenant": "town", "author": "Jane Q. Citizen", "text": texts[i % 4]}))
PY
echo 'not json, from Jane Q. Citizen 519-555-0147' >> "$work/in.jsonl"
kcat -P -b "$bootstrap" -t comments -l "$work/in.jsonl"

total() { http "http://127.0.0.1:$port/metrics" | awk '/^civicsift_comments_total\{/ {s += $2} END {print s + 0}'; }
for _ in $(seq 300); do [[ $(total) -ge $n ]] && break; sleep 0.2; done
[[ $(total) -eq $n ]] || fail "civicsift_comments_total is $(total), want $n"
[[ $(status "http://127.0.0.1:$port/readyz") == 200 ]] || fail "/readyz not 200 while partitions are assigned"
echo "ok $n comments counted, /readyz 200"

# promtool on the exposition (after one statistics round, so lag is in it).
sleep 1
http "http://127.0.0.1:$port/metrics" | tail -n +2 > "$work/metrics.txt"
promtool check metrics < "$work/metrics.txt" || fail "promtool check metrics"
grep -q '^civicsift_dead_letter_total 1$' "$work/metrics.txt" || fail "dead letter not counted"
grep -q '^civicsift_consumer_lag_messages{' "$work/metrics.txt" || fail "no consumer lag series"
echo "ok promtool check metrics"

# A real Prometheus server scrapes it and answers a query. It too takes port 0 and
# logs the port bound ("Listening on" address=...).
cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: civicsift
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:0" > "$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'msg="Listening on"' "$work/prometheus.log" 2>/dev/null && break; sleep 0.1; done
prom_port=$(sed -n 's/.*msg="Listening on" address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/prometheus.log" | head -1)
[[ "$prom_port" =~ ^[1-9][0-9]*$ ]] || { tail -5 "$work/prometheus.log"; fail "prometheus logged no port"; }
query="http://127.0.0.1:$prom_port/api/v1/query?query=sum(civicsift_comments_total)"
answer=""
for _ in $(seq 60); do
  answer=$(http "$query" | tail -n +2)
  [[ "$answer" == *"\"value\":"*"\"$n\""* ]] && break
  sleep 0.5
done
[[ "$answer" == *"\"$n\""* ]] || { cat "$work/prometheus.log" | tail -5; fail "prometheus query answered: $answer"; }
echo "ok prometheus scraped and answered sum(civicsift_comments_total) = $n"

# deploy/: rules, rule tests, dashboard and manifests against this exposition.
python3 "$src/tests/deploy_check.py" --repo "$src" --exposition "$work/metrics.txt" --binary "$bin" || fail "deploy_check"
echo "ok deploy/ consistent with the exposition"

# SIGHUP with a broken policy: the old one stays, the failure is counted and logged.
old_version=$(sed -n 's/^civicsift_policy_info{tenant="town",version="\([0-9a-f]*\)"} 1$/\1/p' "$work/metrics.txt")
cp "$work/patterns/town.yaml" "$work/town.good"
printf '  - id: town.broken\n    category: spam\n    clause: x\n    action: remove\n    regex: ["(?<=a)b"]\n' >> "$work/patterns/town.yaml"
kill -HUP "$run_pid"
reloads() { http "http://127.0.0.1:$port/metrics" | sed -n "s/^civicsift_policy_reloads_total{result=\"$1\",tenant=\"town\"} //p"; }
for _ in $(seq 100); do [[ $(reloads failure) == 1 ]] && break; sleep 0.1; done
[[ $(reloads failure) == 1 ]] || fail "a failed reload was not counted"
http "http://127.0.0.1:$port/metrics" | grep -q "civicsift_policy_info{tenant=\"town\",version=\"$old_version\"} 1" \
  || fail "the old policy is not in force after a failed reload"
grep -q 'town.yaml.*town.broken' "$work/run.log" || fail "the reload error names no file and rule"
echo "ok broken policy: old version $old_version kept, failure counted, file and rule logged"

# SIGHUP after a good edit: the new version is in force and judges new comments.
cp "$work/town.good" "$work/patterns/town.yaml"
printf '  - id: town.zorblax\n    category: spam\n    clause: "Town 7"\n    action: remove\n    terms: [zorblax]\n' >> "$work/patterns/town.yaml"
kill -HUP "$run_pid"
for _ in $(seq 100); do [[ $(reloads success) == 1 ]] && break; sleep 0.1; done
[[ $(reloads success) == 1 ]] || fail "a good reload was not counted"
echo '{"id":"z1","tenant":"town","text":"buy zorblax"}' | kcat -P -b "$bootstrap" -t comments
for _ in $(seq 100); do [[ $(total) -ge $((n + 1)) ]] && break; sleep 0.2; done
verdict=$(timeout 20 kcat -C -b "$bootstrap" -t verdicts -e -q -f '%k %s\n' | grep '^z1 ' || true)
[[ "$verdict" == *'"action":"remove"'* && "$verdict" != *"$old_version"* ]] || fail "after reload: $verdict"
echo "ok good policy: new version in force, its rule fires"

# SIGTERM: exit 0. Logs are JSON lines, and none of them holds comment data.
kill -TERM "$run_pid"
wait "$run_pid" || fail "civicsift run exited with $?"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)
' "$work/run.log" || fail "a log line is not JSON"
for s in "${secrets[@]}" "zorblax" "not json, from"; do
  grep -qF "$s" "$work/run.log" && fail "the log holds comment data: $s"
  grep -qF "$s" "$work/metrics.txt" && fail "the metrics hold comment data: $s"
done
timeout 20 kcat -C -b "$bootstrap" -t comments.dlq -e -q -f '%h\n' > "$work/dlq_headers.txt" 2>/dev/null || true
grep -q 'error.code=not_json' "$work/dlq_headers.txt" || fail "no dead letter with its error headers"
for s in "${secrets[@]}" "not json, from"; do
  grep -qF "$s" "$work/dlq_headers.txt" && fail "dead-letter headers hold comment data: $s"
done
echo "ok JSON logs; no comment text or personal data in logs, metrics or dead-letter headers"
echo "PASS metrics_scrape"
