#!/usr/bin/env bash
# `civicsift scan` end to end: golden output, one record per input line, order kept
# under threads, stdin, streaming, and exit codes. Needs CIVICSIFT and SOURCE_DIR.
set -euo pipefail
bin=${CIVICSIFT:?}
data=${SOURCE_DIR:?}/tests/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CIVICSIFT_CACHE_DIR="$work/cache"
failures=0 passes=0
check() {  # check NAME COMMAND...: runs COMMAND, counts a failure when it fails
  local name=$1; shift
  if "$@"; then echo "ok   $name"; passes=$((passes + 1)); else echo "FAIL $name"; failures=$((failures + 1)); fi
}
scan() { "$bin" scan --patterns "$data/policy" --max-bytes 512 "$@"; }

# --version names the allocator the build links (ALLOCATOR: tcmalloc, or glibc in
# sanitizer builds), since it changes the Kafka service's throughput.
check "--version names the allocator" bash -c "$(printf '%q' "$bin") --version | grep -q '${ALLOCATOR:?}'"

# Golden: every bad-input case yields its error record, valid ones their verdicts.
scan "$data/golden_input.jsonl" > "$work/golden.out"
check "golden output matches" diff -u "$data/golden_expected.jsonl" "$work/golden.out"
lines_in=$(( $(wc -l < "$data/golden_input.jsonl") + 1 ))  # the last line has no newline
check "one output line per input line" test "$(wc -l < "$work/golden.out")" -eq "$lines_in"
check "every output line is JSON" python3 -c '
import json, sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    json.loads(line)' "$work/golden.out"

# The same from stdin, and with the cache warm.
scan < "$data/golden_input.jsonl" > "$work/stdin.out"
check "stdin gives the same output" cmp -s "$work/golden.out" "$work/stdin.out"

# Order is kept whatever the thread count; memory does not grow with the input.
for i in $(seq 1 2000); do cat "$data/golden_input.jsonl"; echo; done > "$work/big.jsonl"
scan --threads 1 "$work/big.jsonl" > "$work/t1.out"
scan --threads 3 "$work/big.jsonl" > "$work/t3.out"
check "threads keep input order" cmp -s "$work/t1.out" "$work/t3.out"
check "big input: one line per line" test "$(wc -l < "$work/t3.out")" -eq "$(wc -l < "$work/big.jsonl")"
check "two files read in order" bash -c "$(printf '%q ' "$bin") scan --patterns $(printf '%q' "$data/policy") --max-bytes 512 $(printf '%q' "$data/golden_input.jsonl") $(printf '%q' "$data/golden_input.jsonl") | wc -l | grep -qx $((2 * lines_in))"

# An error record met after the id was read carries the id (here a trailing comma).
echo '{"id":"e7","tenant":"town","text":"x",}' | scan > "$work/late-error.out"
check "a late decode error keeps the id" grep -q '"id":"e7".*"error"' "$work/late-error.out"

# A default tenant fills in a missing one.
echo '{"id":"d1","text":"shit"}' | "$bin" scan --patterns "$data/policy" --tenant town > "$work/tenant.out"
check "--tenant default applies" grep -q '"id":"d1","tenant":"town","action":"remove"' "$work/tenant.out"

# Usage errors, unreadable files and bad policies: non-zero, one line on stderr.
set +e
scan "$work/missing.jsonl" > /dev/null 2> "$work/err1"; rc1=$?
"$bin" scan --patterns "$work" < /dev/null > /dev/null 2> "$work/err2"; rc2=$?
"$bin" scan --bogus-flag < /dev/null > /dev/null 2>&1; rc3=$?
"$bin" scan --patterns "$data/policy" --tenant gotham < /dev/null > /dev/null 2>&1; rc4=$?
"$bin" scan --max-bytes 0 < /dev/null > /dev/null 2>&1; rc5=$?
"$bin" --version > /dev/null 2>&1; rc6=$?
"$bin" generate --count -1 > /dev/null 2> "$work/err7"; rc7=$?
"$bin" generate --count 1 --violations nan > /dev/null 2> "$work/err8"; rc8=$?  # NaN passes a plain range check
"$bin" generate --count 1 --rate inf > /dev/null 2>&1; rc9=$?
"$bin" generate "--count= -1" > /dev/null 2>&1; rc10=$?  # the space hid the sign
"$bin" check --patterns /nonexistent "$data/policy" > /dev/null 2>&1; rc11=$?
set -e
check "generate --count ' -1': exit 2" test "$rc10" -eq 2
check "check given --patterns and a folder: exit 2, not one of them ignored" test "$rc11" -eq 2
check "generate --violations nan: exit 2, says why" bash -c "test $rc8 -eq 2 && grep -q 'must be a finite number' $(printf '%q' "$work/err8")"
check "generate --rate inf: exit 2" test "$rc9" -eq 2
check "out-of-range --max-bytes: exit 2" test "$rc5" -eq 2
check "--version: exit 0" test "$rc6" -eq 0
check "generate --count -1: exit 2, says why" bash -c "test $rc7 -eq 2 && grep -q 'must not be negative' $(printf '%q' "$work/err7")"
check "missing file: exit 2" test "$rc1" -eq 2
check "missing file: one-line reason" test "$(wc -l < "$work/err1")" -eq 1
check "no policies: exit 2" test "$rc2" -eq 2
check "no policies: names the folder" grep -q "contains no policy files" "$work/err2"
check "unknown flag: exit 2" test "$rc3" -eq 2
check "unknown default tenant: non-zero" test "$rc4" -ne 0

# check and explain on the test policy.
check "check passes on the test policy" "$bin" check "$data/policy"
# An outbound duplicate rule's examples are posted outbound, twice.
mkdir -p "$work/outbound"
cat > "$work/outbound/t.yaml" <<'YAML'
tenant: town
rules:
  - {id: town.staff-repeats, category: off_topic, clause: "Town 9", action: review, direction: outbound,
     duplicate_within: 1h, examples: {match: [Office closed today], no_match: [Office open today]}}
YAML
check "check judges an outbound duplicate rule's examples as outbound posts" "$bin" check --no-cache "$work/outbound"
cp "$work/outbound/t.yaml" "$work/outbound/village.yml"  # a policy under the wrong extension
"$bin" check --no-cache "$work/outbound" > /dev/null 2> "$work/yml.err"
check "a .yml file in the policy folder is named as not read" grep -q 'village.yml is not read: policy files end in .yaml' "$work/yml.err"
ln -s loop.yaml "$work/outbound/loop.yaml"  # a link that leads nowhere: named, not a crash
check "a policy folder holding a symlink loop still loads" "$bin" check --no-cache "$work/outbound" 2> "$work/loop.err"
check "a .yaml link that cannot be followed is named as not read" grep -q 'loop.yaml is not read: ' "$work/loop.err"
# The tenant file example in patterns/README.md is a policy that passes its own check.
mkdir -p "$work/readme-example"
cp -r "${SOURCE_DIR}/patterns/lexicons" "$work/readme-example/"
sed -n '/^## Tenant file/,/^## /p' "${SOURCE_DIR}/patterns/README.md" | sed -n '/^```yaml$/,/^```$/p' | sed '1d;$d' \
  > "$work/readme-example/windsor.yaml"
check "the tenant file example in patterns/README.md passes check" "$bin" check --no-cache "$work/readme-example"
"$bin" explain --patterns "$data/policy" --tenant town "what the f*ck, call 519-555-0147" > "$work/explain.out"
check "explain names rule, clause and span" grep -q "town.swears -> remove  (Town 2.1)" "$work/explain.out"
check "explain marks the span" grep -q "what the \[f\*ck\]" "$work/explain.out"
"$bin" explain --patterns "$data/policy" --tenant town $'f*ck\x1b[2J\nforged line' > "$work/explain-ctl.out"
check "explain shows control characters escaped" grep -qF '[f*ck]\x1b[2J\x0aforged line' "$work/explain-ctl.out"
# Their errors go through the logger, as every command's: exit 2 and a logged reason.
set +e
"$bin" explain --patterns "$data/policy" --tenant gotham "hello" > /dev/null 2> "$work/explain-err"; rc_explain=$?
"$bin" eval --patterns "$data/policy" --tenant town "$work/no-such.tsv" > /dev/null 2> "$work/eval-err"; rc_eval=$?
set -e
check "explain, unknown tenant: exit 2" test "$rc_explain" -eq 2
check "explain, unknown tenant: logged with the known ones" grep -q 'error.*unknown tenant "gotham"; known: town' "$work/explain-err"
# Usage errors are logged in the chosen format, and never repeat explain's words:
# unquoted, they are comment text. A text that begins with - goes after --.
set +e
"$bin" --log-format json explain --patterns "$data/policy" --tenant town Jane Doe at 519-555-0147 \
  > /dev/null 2> "$work/explain-words"; rc_words=$?
"$bin" explain --patterns "$data/policy" --tenant town "-f*ck this" > /dev/null 2> "$work/explain-dash"; rc_dash=$?
"$bin" explain --patterns "$data/policy" --tenant town "--outbound=Jane Doe" > /dev/null 2> "$work/explain-flag"; rc_flag=$?
"$bin" explain --patterns "$data/policy" --tenant town --log-level "Jane Doe" --log-format "at 519-555-0147" -- hi \
  > /dev/null 2> "$work/log-options"; rc_log=$?
set -e
check "explain, unquoted words: exit 2" test "$rc_words" -eq 2
check "explain, unquoted words: not repeated" bash -c "! grep -qE 'Doe|519' $(printf '%q' "$work/explain-words")"
check "explain, unquoted words: says to quote, as one JSON log line" python3 -c '
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 1 and json.loads(lines[0])["level"] == "error" and "one argument" in lines[0], lines' \
  "$work/explain-words"
check "explain, text given to a flag: exit 2, not repeated" bash -c "test $rc_flag -eq 2 && ! grep -q Doe $(printf '%q' "$work/explain-flag")"
check "log options given a text: exit 2, not repeated" bash -c \
  "test $rc_log -eq 2 && grep -q 'expected' $(printf '%q' "$work/log-options") && ! grep -qE 'Doe|519' $(printf '%q' "$work/log-options")"
check "explain, text after a dash: exit 2" test "$rc_dash" -eq 2
check "explain, text after a dash: points to --" grep -qF "goes after --" "$work/explain-dash"
check "explain -- TEXT takes a text that begins with a dash" bash -c \
  "$(printf '%q' "$bin") explain --patterns $(printf '%q' "$data/policy") --tenant town -- '-f*ck this' | grep -q town.swears"
check "explain --help: exit 0, on stdout" bash -c "$(printf '%q' "$bin") explain --help | grep -q 'after --'"
check "eval, missing corpus: exit 2" test "$rc_eval" -eq 2
printf 'text\tlabel\nwhat the shit\tOFF\n\nhello\tNOT\nno label here\n\n' > "$work/corpus.tsv"
"$bin" eval --patterns "$data/policy" --tenant town --text-column text --label-column label --positive OFF --json \
  "$work/corpus.tsv" > "$work/eval.json"
check "eval: blank lines ignored, short rows counted as skipped" \
  grep -q '"rows":2,"skipped":1,"positives":1,"precision":1.0000,"recall":1.0000' "$work/eval.json"
set +e
"$bin" eval --patterns "$data/policy" --tenant town --format sms "$work" > /dev/null 2> "$work/eval-dir"; rc_dir=$?
set -e
check "eval, a folder: exit 2, says so" bash -c "test $rc_dir -eq 2 && grep -q 'it is a folder' $(printf '%q' "$work/eval-dir")"
check "eval, missing corpus: logged with the reason" grep -q "error.*cannot open .*no-such.tsv: No such file" "$work/eval-err"

"$bin" clauses "$data/policy" > "$work/clauses.md"
check "clauses table lists a duplicate rule" grep -qF "| Town 6 | town.single-posts | spam | remove | duplicate posts |" "$work/clauses.md"
check "clauses table lists repeat offenders" grep -qF "route ban_review" "$work/clauses.md"
# A '|' in a clause stays in its cell, and a note belongs to the rules of its row only.
mkdir -p "$work/piped"
cat > "$work/piped/t.yaml" <<'YAML'
tenant: piped
rules:
  - {id: piped.a, category: threat, clause: "Sec 4 | Appendix A", action: escalate, terms: [hurt you], routes: [security]}
  - {id: piped.b, category: threat, clause: "Sec 4 | Appendix A", action: escalate, terms: [harm you]}
  - {id: piped.c, category: spam, clause: "Sec 5", action: remove, terms: [buy now], direction: inbound}
YAML
"$bin" clauses --patterns "$work/piped" > "$work/piped.md"
check "clauses escapes a '|' and keeps notes to their rules" bash -c "
  grep -qxF '| Sec 4 \\| Appendix A | piped.a | threat | escalate | route security |' $(printf '%q' "$work/piped.md") &&
  grep -qxF '| Sec 4 \\| Appendix A | piped.b | threat | escalate |  |' $(printf '%q' "$work/piped.md") &&
  grep -qxF '| Sec 5 | piped.c | spam | remove | public comments only |' $(printf '%q' "$work/piped.md")"

# Output that cannot be written (a full disk, a closed pipe) fails with a reason,
# never exits 0 and never aborts: stdio would otherwise report it only at exit.
set +e
"$bin" clauses "$data/policy" > /dev/full 2> "$work/full1"; full1=$?
"$bin" explain --patterns "$data/policy" --tenant town "shit" > /dev/full 2> "$work/full2"; full2=$?
scan "$data/golden_input.jsonl" > /dev/full 2> "$work/full3"; full3=$?
"$bin" generate --count 10 > /dev/full 2> "$work/full4"; full4=$?
"$bin" generate --count 20 --rate 2000 > /dev/full 2> "$work/full5"; full5=$?  # flushed while paced
set -e
for n in 1 2 3 4 5; do
  rc_var="full$n"
  check "unwritable output $n: exit 1" test "${!rc_var}" -eq 1
  check "unwritable output $n: says why" grep -q "No space left on device" "$work/full$n"
done

# The output closes while the input is a pipe that stays quiet (`tail -f ... | civicsift
# scan | head -1`): once a write fails, scan exits 1 instead of waiting for more input.
# The output is a pipe whose reader has already gone, so the first write fails.
exec {closed_out}> >(true)
wait $!
exec {quiet}< <(head -1 "$data/golden_input.jsonl"; exec sleep 60)
quiet_pid=$!
set +e
started=$SECONDS
timeout 30 "$bin" scan --patterns "$data/policy" --threads 2 <&"$quiet" >&"$closed_out" 2> "$work/closed.err"
closed=$?
set -e
exec {quiet}<&- {closed_out}>&-
kill "$quiet_pid" 2> /dev/null || true
check "closed output, quiet input: exit 1 (not a timeout)" test "$closed" -eq 1
check "closed output, quiet input: within seconds" test $((SECONDS - started)) -lt 10

# The demo: every comment the embedded broker took comes back as a record, and the
# summary says so (the test policy knows none of the demo's tenants: all dead letters).
demo_rc=0
"$bin" demo --patterns "$data/policy" --duration 2 --rate 500 --metrics-address "" > "$work/demo.out" 2> "$work/demo.err" ||
  demo_rc=$?
check "demo: exit 0" test "$demo_rc" -eq 0
check "demo: every comment produced is answered" bash -c \
  "grep 'civicsift demo' $(printf '%q' "$work/demo.out") | tail -1 | awk '{ exit !(\$6 > 0 && \$6 == \$8 + \$11) }'"

echo "$passes passed, $failures failed"
test "$failures" -eq 0
