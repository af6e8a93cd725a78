"""Runs every benchmark of bench/run-benchmarks and writes BENCHMARKS.md with plots."""
import argparse, json, os, platform, random, resource, subprocess, sys, time

ap = argparse.ArgumentParser()
for flag in ("--root", "--bin", "--work", "--out"):
    ap.add_argument(flag, required=True)
args = ap.parse_args()
root, bin_, work = args.root, args.bin, args.work
patterns = os.path.join(root, "patterns")
plots = os.path.join(root, "bench", "plots")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# This VM's speed drifts by up to 2x within minutes (shared host, no CPU pinning), so
# every timed figure, civicsift's and the peers' alike, is the best of RUNS runs: the
# run least disturbed is the closest to what the code costs.
RUNS = 3
# The peers' rounds and the whole `scan` process take more: each process here lands in
# a fast or a slow mode at random (the same binary, 2.0 or 2.7-3.1 µs per comment, ASLR
# off too: the host), and all three came out slow in three runs of 7 December 2026.
PROCESS_RUNS = 5


NS_PER_UNIT = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}


def gbench(exe, *extra, repetitions=RUNS):
    """Google Benchmark JSON: name -> (ns per comment, comments per second, record), best of
    repetitions. Wall time throughout: the two-thread runs can only be timed by the wall
    clock, and their ratios to the one-thread runs must compare like with like."""
    res = subprocess.run([exe, "--benchmark_format=json", f"--benchmark_repetitions={repetitions}", *extra],
                         check=True, capture_output=True, text=True)
    out = {}
    for b in json.loads(res.stdout)["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name = b["name"].split("/")[0].removeprefix("BM_")
        if b.get("threads", 1) > 1:  # "Decode x2": wall ns per comment with every thread busy (UseRealTime)
            name += f" x{b['threads']}"
            ns = 1e9 / b["items_per_second"]
            rate = b["items_per_second"]
        else:  # one comment per iteration; items_per_second is per CPU second here
            ns = b["real_time"] * NS_PER_UNIT[b.get("time_unit", "ns")]
            rate = 1e9 / ns if b.get("items_per_second") else 0
        # A tail figure's least disturbed repetition is the one with the lowest tail.
        better = (lambda old: b["p99_us"] < old[2]["p99_us"]) if "p99_us" in b else (lambda old: ns < old[0])
        if name not in out or better(out[name]):
            out[name] = (ns, rate, b)
    return out


def gbench_rounds(exe, *extra):
    """gbench() RUNS times, each run's repetitions interleaved at random; the run whose
    whole path was fastest, all its layers together: layers set against each other (the
    stage floor against the whole path) then come from the same minutes, not one from a
    fast spell of this VM and another from a slow one."""
    runs = [gbench(exe, "--benchmark_enable_random_interleaving=true", *extra) for _ in range(RUNS)]
    best = min(runs, key=lambda run: run["ClassifyPath"][0])
    if "ScanLatency" in best:  # a tail, set against no other layer: its own least disturbed run
        best["ScanLatency"] = min((run["ScanLatency"] for run in runs), key=lambda r: r[2]["p99_us"])
    return best


def timed(cmd):
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def best_timed(cmd, runs=RUNS):
    """The fastest of `runs` runs (wall seconds), the largest peak RSS (MiB) and the least
    CPU seconds of a run."""
    runs = [timed(cmd) for _ in range(runs)]
    return min(r[0] for r in runs), max(r[1] for r in runs), min(r[2] for r in runs)


def generate(path, count, seed=42):
    with open(path, "w") as f:
        subprocess.run([bin_, "generate", "--count", str(count), "--seed", str(seed)], stdout=f, check=True)


def plot(name, title, xlabel, ylabel, rows, logx=False):
    data = os.path.join(work, name + ".dat")
    with open(data, "w") as f:
        for r in rows:
            f.write(" ".join(str(v) for v in r) + "\n")
    script = f"""set terminal pngcairo size 720,420
set output '{os.path.join(plots, name + '.png')}'
set title '{title}'
set xlabel '{xlabel}'
set ylabel '{ylabel}'
set grid
set key off
{'set logscale x' if logx else ''}
plot '{data}' using 1:2 with linespoints lw 2 pt 7
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


sections = []
machine = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
cores = os.cpu_count()
build = subprocess.run([bin_, "--version"], capture_output=True, text=True, check=True).stdout.strip()

# One corpus for every engine: the generated stream as `civicsift generate --seed 42`
# writes it. bench_classify reads its 50,000 lines; bench_peers and the npm filters its
# first 20,000; the one-tenant policies (profanity only, the floor, the pattern counts)
# the same lines addressed to `windsor`.
corpus = os.path.join(work, "corpus.jsonl")
generate(corpus, 50000)
PEERS_CORPUS_SIZE = 20000  # bench_peers' kCorpusSize
peers_corpus = os.path.join(work, "corpus-peers.jsonl")
one_tenant = os.path.join(work, "one-tenant.jsonl")
with open(corpus) as src, open(one_tenant, "w") as dst, open(peers_corpus, "w") as first:
    for n, line in enumerate(src):
        if n < PEERS_CORPUS_SIZE:
            first.write(line)
        comment = json.loads(line)
        comment["tenant"] = "windsor"
        dst.write(json.dumps(comment) + "\n")

# 1. Layers and the whole classify path, one thread and (the stages and the whole
# path) two threads, each over its own half of the corpus.
log("layers ...")
layers = gbench_rounds(os.path.join(root, "build/bench/bench_classify"), "--patterns", patterns, "--corpus", corpus,
                       "--benchmark_filter=^BM_(Decode|Skeleton|ScanAndVerdict|Engine|WriteVerdict|ClassifyPath|ScanLatency)"
                       "(/real_time/threads:2)?$")
STAGES = ("Decode", "Skeleton", "Engine", "WriteVerdict")
latency = layers["ScanLatency"][2]  # per-comment percentiles, comments up to 1 KB
log("hostile input ...")
res = subprocess.run([os.path.join(root, "build/bench/bench_classify"), "--patterns", patterns,
                      "--benchmark_filter=HostileText", "--benchmark_format=json", "--benchmark_min_time=0.05"],
                     check=True, capture_output=True, text=True)
hostile = {}  # unit index -> [(bytes, ns per byte)]
for b in json.loads(res.stdout)["benchmarks"]:
    if b.get("run_type") != "iteration" or "/" not in b["name"]:
        continue
    _, unit, size = b["name"].split("/")[:3]
    hostile.setdefault(int(unit), []).append((int(size), b["cpu_time"] / int(size)))
starter = gbench(os.path.join(root, "build/bench/bench_classify"), "--patterns", os.path.join(root, "tests/data/policy"),
                 "--benchmark_filter=ClassifyPath")
avg_bytes = layers["ClassifyPath"][2].get("avg_text_bytes", 0)
# The floor: the same path with a one-rule policy (decode, skeleton, an almost empty scan, write).
floor_dir = os.path.join(work, "floor")
os.makedirs(floor_dir, exist_ok=True)
with open(os.path.join(floor_dir, "windsor.yaml"), "w") as f:
    f.write("tenant: windsor\nname: floor\nrules:\n  - id: one\n    category: spam\n    clause: x\n"
            "    action: review\n    terms: [zzqxj]\n    examples: {match: [zzqxj], no_match: [park]}\n")
floor = gbench_rounds(os.path.join(root, "build/bench/bench_classify"), "--patterns", floor_dir, "--corpus", one_tenant,
                      "--benchmark_filter=^BM_(Decode|Skeleton|WriteVerdict|ClassifyPath)$")

# 2. Peers on the same rules and corpus. This VM changes speed within minutes, so
# civicsift and its peers (RE2::Set and PCRE2 in bench_peers, the npm filters in node)
# are timed in turns, PROCESS_RUNS rounds, each keeping its best: a ratio then compares runs
# made moments apart, not one side's fast phase with the other's slow one.
# Like for like with the npm filters, which only look for profanity: civicsift with a
# policy of its profanity rule alone (the English profanity lexicon, masked spellings
# included), still the whole path (JSON in, verdict with offsets out).
profanity_dir = os.path.join(work, "profanity")
os.makedirs(profanity_dir, exist_ok=True)
if not os.path.exists(os.path.join(profanity_dir, "lexicons")):
    os.symlink(os.path.join(patterns, "lexicons"), os.path.join(profanity_dir, "lexicons"))
with open(os.path.join(profanity_dir, "windsor.yaml"), "w") as f:
    f.write("tenant: windsor\nname: profanity only\nlexicons: [profanity-en]\nrules:\n"
            "  - id: profanity\n    category: profanity\n    clause: x\n    action: remove\n"
            "    lexicon_terms: [profanity-en]\n    examples: {match: [what the f*ck], no_match: [Scunthorpe]}\n")
with open(os.path.join(patterns, "lexicons", "profanity-en.yaml")) as f:
    lexicon = f.read().split("\nallow:")[0]  # the terms: list, before the allow: list
profanity_words = [l for l in lexicon.splitlines() if l.strip().startswith("- ")]
profanity_layers = gbench_rounds(os.path.join(root, "build/bench/bench_classify"), "--patterns", profanity_dir,
                                 "--corpus", one_tenant,
                                 "--benchmark_filter=^BM_(Decode|Skeleton|WriteVerdict|ClassifyPath)$")
peers, npm, profanity_only = {}, {}, 0  # name -> best comments/s
peer_rejected = {}  # name -> expressions the engine would not compile
expressions = {}  # name -> expressions the engine is given, masked_terms for civicsift's lookup
npm_cpu = {}  # npm filter -> least CPU seconds per million comments (node's own threads too)
bench_peers = os.path.join(root, "build/bench/bench_peers")
for round_ in range(PROCESS_RUNS):
    log(f"peers, round {round_ + 1} of {PROCESS_RUNS}: civicsift, RE2::Set, PCRE2, npm filters ...")
    for name, (_, rate, record) in gbench(bench_peers, "--patterns", patterns, "--corpus", peers_corpus,
                                          repetitions=1).items():
        peers[name] = max(peers.get(name, 0), rate)
        peer_rejected[name] = int(record.get("patterns_rejected", 0))
        expressions[name] = int(record.get("expressions", 0))
        if name == "civicsift":
            expressions["masked_terms"] = int(record.get("masked_terms", 0))
    profanity_only = max(profanity_only, gbench(bench_peers, "--patterns", profanity_dir, "--corpus", one_tenant,
                                                "--benchmark_filter=civicsift", repetitions=1)["civicsift"][1])
    res = subprocess.run(["node", os.path.join(root, "bench/peers/speed.mjs"), peers_corpus, "1"], check=True,
                         capture_output=True, text=True)
    for line in res.stdout.splitlines():
        j = json.loads(line)
        npm[j["filter"]] = max(npm.get(j["filter"], 0), j["comments_per_second"])
        npm_cpu[j["filter"]] = min(npm_cpu.get(j["filter"], float("inf")), j["cpu_seconds_per_million"])
core = peers["civicsift"]

# 3. Kafka path vs a pure relay on dev-broker, the live ceiling, and latency at 50% / 90% of it.
log("kafka path ...")
kafka = {"latency": []}
for attempt in range(3):  # the in-process mock broker now and then stalls: bench_kafka exits 3
    res = subprocess.run([os.path.join(root, "build/bench/bench_kafka"), "--patterns", patterns],
                         capture_output=True, text=True)
    if res.returncode != 3:
        break
    log("kafka path: the mock broker stalled, running again")
if res.returncode != 0:
    raise RuntimeError(f"bench_kafka failed: {res.stderr}")
for line in res.stdout.splitlines():
    j = json.loads(line)
    if j["measure"] == "latency":
        kafka["latency"].append(j)
    else:
        kafka[j["measure"]] = j

# The service does all the relay does plus classification: at least relay CPU +
# classification CPU per message, so with `cores` cores at most cores / (that) messages
# per second, and at most that over the relay's rate as a ratio (the relay's own CPU
# counted in its timed window: counted high, it would make the bound too low).
def kafka_ratio_bound(classification_us):
    relay = kafka["throughput"]
    return min(1.0, cores * 1e6 / (relay["relay_per_second"] * (relay["relay_cpu_us"] + classification_us)))


# Classification at its cost in the peers' rounds (the whole path, best of them).
kafka_bound = kafka_ratio_bound(1e6 / core)
# What classification would have to cost for 85% to be within the bound.
kafka_classification_for_85 = (cores * 1e6 / (0.85 * kafka["throughput"]["relay_per_second"])
                               - kafka["throughput"]["relay_cpu_us"])
floor_ratio = kafka["throughput"]["floor_per_second"] / kafka["throughput"]["relay_per_second"]
latency_cell = lambda ms: "not answered" if ms < 0 else f"{ms} ms"


# 4. Compile time and database size, cold and from the cache.
log("compile ...")
cold = best_timed([bin_, "check", "--no-cache", patterns])[0]
subprocess.run([bin_, "scan", "--patterns", patterns, corpus], stdout=subprocess.DEVNULL, check=True)  # fill the cache
empty = os.path.join(work, "empty.jsonl")
open(empty, "w").close()
warm = best_timed([bin_, "scan", "--patterns", patterns, empty])[0]
process_start = best_timed([bin_, "--version"])[0]  # loading the process alone: the least any start-up takes
dbinfo = subprocess.run([bin_, "--log-level", "debug", "scan", "--patterns", patterns, "--no-cache", empty],
                        capture_output=True, text=True).stderr
tenant_rows = []
for line in dbinfo.splitlines():
    if " loaded " in line:
        # "loaded windsor@v (N rules, M patterns, K KiB[ shared], S s)"
        body = line.split(" loaded ", 1)[1]
        label, rest = body.split(" (", 1)
        parts = [p.strip() for p in rest.rstrip(")").split(",")]
        tenant_rows.append((label.split("@")[0], parts[0].split()[0], parts[1].split()[0],
                            parts[2].split()[0] + (" KiB, shared" if parts[2].endswith("shared") else " KiB"),
                            parts[3].split()[0]))

# 5. `civicsift scan` over 500,000 lines, whole process, and threads.
log("scan 500k ...")
big = os.path.join(work, "big.jsonl")
generate(big, 500000, seed=7)


def stages_on_both_cores():
    """Wall ns per comment with both cores at them, timed now: the four stages together,
    and the whole path (decode, classify, write; nothing of the scan's own work)."""
    run = gbench(os.path.join(root, "build/bench/bench_classify"), "--patterns", patterns, "--corpus", corpus,
                 "--benchmark_filter=^BM_(Decode|Skeleton|Engine|WriteVerdict|ClassifyPath)/real_time/threads:2$",
                 repetitions=1)
    return sum(run[n + " x2"][0] for n in STAGES), run["ClassifyPath x2"][0]


# The floor the scan's target is held against is timed right before and after the scan
# runs (the lower of the two counts): this VM's speed drifts by half within minutes,
# and a floor from the peers' minutes once put the scan's limit at its measured rate.
around_scan = [stages_on_both_cores()]
scan_runs = {}
for threads in (1, 2):
    s, rss, cpu = best_timed([bin_, "scan", "--patterns", patterns, "--threads", str(threads), big], PROCESS_RUNS)
    scan_runs[threads] = (500000 / s, s, rss, cpu)
around_scan.append(stages_on_both_cores())
scan_stage_floors = [stages for stages, _ in around_scan]
scan_stage_floor = min(scan_stage_floors)
scan_path_floor = min(path for _, path in around_scan)  # the whole path alone, both cores
plot("threads", "civicsift scan, 500k comments, five tenants", "threads", "comments/s",
     [(t, round(v[0])) for t, v in scan_runs.items()])

# 6. Comment length: the same benign text repeated to each size.
log("length ...")
length_rows = []
base = [json.loads(l)["text"] for l in open(corpus) if '"text"' in l][:2000]
for size in (50, 200, 1000, 4000, 10000):
    path = os.path.join(work, f"len{size}.jsonl")
    n = max(2000, min(100000, 20_000_000 // size))
    with open(path, "w") as f:
        for i in range(n):
            t = ""
            while len(t.encode()) < size:
                t += base[(i + len(t)) % len(base)] + " "
            t = t.encode()[:size].decode("utf-8", "ignore")
            f.write(json.dumps({"id": f"l{i}", "tenant": "windsor", "text": t}) + "\n")
    s = best_timed([bin_, "scan", "--patterns", patterns, "--threads", "1", path])[0]
    s -= warm  # start-up is measured above
    length_rows.append((size, round(n / s), round(n * size / s / 1e6, 1)))
plot("length", "civicsift scan, one thread, by comment length", "text bytes", "comments/s",
     [(r[0], r[1]) for r in length_rows], logx=True)

# 7. Pattern count: one synthetic tenant with N literal terms, and the corpus
# addressed to it alone (another tenant's comment would be an error record, not a scan).
log("pattern count ...")
pattern_rows = []
rng = random.Random(5)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9))) for _ in range(10000)]
for count in (100, 1000, 3000, 10000):
    d = os.path.join(work, f"p{count}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "windsor.yaml"), "w") as f:
        f.write("tenant: windsor\nname: synthetic\nrules:\n")
        for r in range(0, count, 100):
            f.write(f"  - id: r{r}\n    category: spam\n    clause: x\n    action: review\n"
                    f"    terms: [{', '.join(words[r:r + 100])}]\n"
                    f"    examples: {{match: ['{words[r]}'], no_match: ['the park is lovely']}}\n")
    cs = timed([bin_, "check", "--no-cache", d])[0]  # compiles; the scans below use the cache
    subprocess.run([bin_, "scan", "--patterns", d, empty], check=True)
    start = best_timed([bin_, "scan", "--patterns", d, empty])[0]
    s = best_timed([bin_, "scan", "--patterns", d, "--threads", "1", one_tenant])[0]
    pattern_rows.append((count, round(50000 / max(s - start, 1e-3)), round(cs, 2)))
plot("patterns", "civicsift scan, one thread, by literal count (one tenant)", "terms", "comments/s",
     [(r[0], r[1]) for r in pattern_rows], logx=True)

# BENCHMARKS.md
total_rules = sum(int(row[1]) for row in tenant_rows)
mean_patterns = sum(int(row[2]) for row in tenant_rows) / max(1, len(tenant_rows))
peers_rejected_note = ", ".join(f"{name}: {count:,} expressions it would not compile" for name, count in
                                sorted(peer_rejected.items()) if name != "civicsift") or "every expression compiled"
ratio = lambda a, b: f"{a / b:.2f}x"
per_million = lambda rate: f"{1e6 / rate:,.2f}"  # one thread: CPU seconds per million comments
md = [f"""# civicsift benchmarks

Regenerate everything here (tables and `bench/plots/*.png`) with one command:

```sh
bench/run-benchmarks
```

Machine: {machine}, {cores} cores, {platform.system()} {platform.release()}. Build: {build}
(Release, `-O3`; the allocator matters to the Kafka path, see there). This shared
VM's speed drifts by up to 2x within minutes (no CPU pinning), so every timed figure,
civicsift's and the peers' alike, is the best of {RUNS} runs ({PROCESS_RUNS} for the peers' rounds and
the whole `scan` process: each process lands in a fast or a slow mode of the host at
random, 1.4x apart; the hostile-input table and the pattern-count compile times are
single runs, and the scan's p99 is the lowest of its repetitions); absolute figures still vary
between invocations by 10-20%, ratios less. Corpus: the generated stream (`civicsift generate`: mostly benign
municipal comments, ~12% violations, 2% of 1-8 KB, five tenants), {avg_bytes:.0f} bytes of
text on average. Policies: the five packs in `patterns/` ({total_rules} rules, about {mean_patterns:,.0f}
Hyperscan patterns per tenant once lexicons are expanded, the masked spellings of their
terms looked up after the scan). The generator draws from a limited stock of phrasings:
64% of the 50,000 benchmark comments repeat a (tenant, text) pair seen before (70% of the
500,000 of the `scan` runs). civicsift remembers no verdicts, so every repeat is scanned
in full, but repeats keep the caches and branch predictors warmer than a real stream
would; `bench/compare-filters` times civicsift and the npm filters on real tweets too.

## Classification core, one thread (Google Benchmark)

| layer | ns per comment | comments/s |
|---|---:|---:|
"""]
for name, label in (("Decode", "decode (simdjson)"), ("Skeleton", "skeleton (normalisation)"),
                    ("ScanAndVerdict", "scan + verdict (skeleton included)"),
                    ("Engine", "Hyperscan alone (the same scans, buffers prepared beforehand)"),
                    ("WriteVerdict", "verdict JSON write"),
                    ("ClassifyPath", "**whole path** (JSON in, verdict JSON out)")):
    ns, rate, _ = layers[name]
    md.append(f"| {label} | {ns:,.0f} | {rate:,.0f} |\n")
md.append(f"| whole path, starter policy (`tests/data/policy`, 6 rules) | {starter['ClassifyPath'][0]:,.0f} | {starter['ClassifyPath'][1]:,.0f} |\n")
md.append(f"| whole path, floor (one rule, one term) | {floor['ClassifyPath'][0]:,.0f} | {floor['ClassifyPath'][1]:,.0f} |\n")
md.append(f"""
Scan latency, each comment timed alone (skeleton + one scan + verdict; the
{latency['comments']:,.0f} corpus comments of at most 1 KB): p50 **{latency['p50_us']:.2f} µs**,
p99 **{latency['p99_us']:.2f} µs**, p99.9 {latency['p999_us']:.2f} µs, max {latency['max_us']:.1f} µs
(the max includes the odd preemption on a shared machine).

Both cores: the same layers on two threads at once, each thread over its own half of
the corpus (as two workers of a stream never read the same comments), timed in the
same interleaved run as the one-thread figures above.

| layer | one thread, comments/s | two threads, comments/s | two threads / one |
|---|---:|---:|---:|
""")
for name, label in (("Decode", "decode"), ("Skeleton", "skeleton"), ("Engine", "Hyperscan alone"),
                    ("WriteVerdict", "verdict JSON write"), ("ClassifyPath", "**whole path**")):
    one, two = layers[name][1], layers[name + " x2"][1]
    md.append(f"| {label} | {one:,.0f} | {two:,.0f} | {two / one:.2f}x |\n")
stage_floor = sum(layers[n][0] for n in STAGES)
two_core_floor = sum(layers[n + " x2"][0] for n in STAGES)  # wall ns per comment, both cores busy
# What the stages cost with both cores busy, against half their one-thread cost (1.00:
# two cores do twice the work of one). Measured, not assumed: on this VM a core may do
# less while the other one works too (shared caches and host), or more (one virtual CPU
# alone is not always as fast as two busy ones).
two_core_factor = two_core_floor / stage_floor
md.append(f"""
The four stages together (the stage floor, below) take {stage_floor:,.0f} ns per comment on one
thread and {two_core_floor:,.0f} ns of wall time per comment on two: two cores do
{stage_floor / two_core_floor:.2f}x the work of one. How far from 2x that lands changes from run to run on
this VM (1.6x to 2.6x for a single layer in the runs of 2 December 2026): its two virtual
CPUs share caches and a host, and one of them alone is not always as fast as either of
two busy ones.
""")
md.append(f"""
## Peers on the same rules and corpus, one thread

civicsift does the whole path (decode, skeleton, one scan with match offsets, verdict,
JSON out). RE2::Set and the PCRE2 loop get the same decode and skeleton and the same
expressions (`policy_expressions()`), and only find which patterns match (no offsets,
no verdict); the npm filters get the text alone (no JSON). All of them read the same
file, the first {PEERS_CORPUS_SIZE:,} comments of the generated stream ({peers_rejected_note}).
Over the five tenants civicsift compiles {expressions['civicsift']:,} expressions and looks up the
masked spellings ("f*ck") of {expressions['masked_terms']:,} terms after its scan; RE2::Set and PCRE2,
which have no such step, get those spellings as literals: {expressions['re2_set']:,} expressions.
Every engine here is timed in turns with the others, {PROCESS_RUNS} rounds, and keeps its best
round, so that no ratio sets one side's fast phase of this VM against the other's slow one.
The C++ engines run on one thread, so their CPU seconds per million comments are
1,000,000 / their rate; node's are its process's CPU time (its compiler and garbage
collector threads too) over the best pass.

| engine | comments/s | CPU s per million comments | civicsift / peer |
|---|---:|---:|---:|
| **civicsift** (Hyperscan) | {core:,.0f} | {per_million(core)} | 1.00x |
| RE2::Set | {peers['re2_set']:,.0f} | {per_million(peers['re2_set'])} | {ratio(core, peers['re2_set'])} |
| PCRE2 loop (JIT) | {peers['pcre2_loop']:,.0f} | {per_million(peers['pcre2_loop'])} | {ratio(core, peers['pcre2_loop'])} |
| npm `@2toad/profanity` (profanity only) | {npm['@2toad/profanity']:,.0f} | {npm_cpu['@2toad/profanity']:.2f} | {ratio(core, npm['@2toad/profanity'])} |
| npm `obscenity` (profanity only) | {npm['obscenity']:,.0f} | {npm_cpu['obscenity']:.2f} | {ratio(core, npm['obscenity'])} |

Like for like with the npm filters, which look for profanity only: civicsift with a policy
of one profanity rule (the English profanity lexicon, {len(profanity_words)} terms, with their
masked spellings), still the whole path from JSON to verdict with offsets, over the same
comments (addressed to that policy's tenant).

| engine, profanity only | comments/s | CPU s per million comments | civicsift / peer |
|---|---:|---:|---:|
| **civicsift**, profanity policy | {profanity_only:,.0f} | {per_million(profanity_only)} | 1.00x |
| npm `@2toad/profanity` | {npm['@2toad/profanity']:,.0f} | {npm_cpu['@2toad/profanity']:.2f} | {ratio(profanity_only, npm['@2toad/profanity'])} |
| npm `obscenity` | {npm['obscenity']:,.0f} | {npm_cpu['obscenity']:.2f} | {ratio(profanity_only, npm['obscenity'])} |

## The Kafka path (dev-broker, in process)

`bench_kafka`: the same backlog of {kafka['throughput']['messages']:,} generated comments over 16 partitions read by a
pure relay (consume, produce the same bytes, the service's client settings and offset
handling: each input offset stored once its copy is acknowledged, the stores made
together once per batch of delivery reports; no parsing or scanning) and by `civicsift run`'s service (two workers, five
tenants, every event counted in the production Prometheus metrics as in `civicsift run`)
and by the same service with the floor policies (below), five times each in turn, the best
run of each. The backlog is large enough that a run
lasts a fraction of a second or more: with a quarter of it the clients' linger and
fetch waits dominated and the relay's rate swung by half between runs. Each side is timed from its
first message consumed to its last record acknowledged. dev-broker is librdkafka's in-memory mock in
the same process: nothing waits on a network, and the ratio is mostly one of CPU per
message. The CPU column is the whole process's CPU time (the broker's threads included)
per message over the same window (read when the first message is consumed and when
the last record is acknowledged; the clients' start-up, group join and teardown left
out); µs per message is also CPU seconds per million comments, what a deployment pays
for each million. CPU µs per message times messages/s is the cores a side kept busy.

| path | messages/s | CPU µs per message |
|---|---:|---:|
| relay | {kafka['throughput']['relay_per_second']:,} | {kafka['throughput']['relay_cpu_us']:.2f} |
| civicsift | {kafka['throughput']['civicsift_per_second']:,} | {kafka['throughput']['civicsift_cpu_us']:.2f} |
| **civicsift / relay** | **{kafka['throughput']['civicsift_per_second'] / kafka['throughput']['relay_per_second']:.0%}** | |
| civicsift, floor policies | {kafka['throughput']['floor_per_second']:,} | {kafka['throughput']['floor_cpu_us']:.2f} |
| floor policies / relay | {floor_ratio:.0%} | |

The floor policies are the same five tenants with one rule each, of one term that never
matches: the service still decodes, builds the skeleton, scans (a tiny database), writes
the verdict, sets its headers, produces it and tracks its delivery and offset, but
classification is all but free. The floor run is timed in the same rounds as the other
two. It splits the service's extra CPU over the relay
({kafka['throughput']['civicsift_cpu_us'] - kafka['throughput']['relay_cpu_us']:.2f} µs per message) in two:
**{kafka['throughput']['floor_cpu_us'] - kafka['throughput']['relay_cpu_us']:.2f} µs** for the work around
classification, and **{kafka['throughput']['civicsift_cpu_us'] - kafka['throughput']['floor_cpu_us']:.2f} µs** for
classification with the five policies (the least-CPU run of each side, so the split is
as exact as this VM lets runs a minute apart be).

Where civicsift's CPU goes, by thread (the service names its threads; µs per message):

| run | workers (decode, classify, verdict, produce call) | consumer thread | delivery reports | librdkafka threads (clients and broker) | other |
|---|---:|---:|---:|---:|---:|
""" + "".join(f"| {name} | {cpu.get('workers', 0):.2f} | {cpu.get('cs-consume', 0):.2f} | {cpu.get('cs-deliver', 0):.2f} | {cpu.get('librdkafka', 0):.2f} | {cpu.get('other', 0):.2f} |\n"
              for name, cpu in (("five policies", kafka['service_cpu']), ("floor policies", kafka['floor_cpu']))) + f"""

Why 85% cannot hold here: the service does all the relay does (same client, same
broker, same offset handling) plus classification, so it needs at least relay CPU +
classification CPU per message, and {cores} cores run at most {cores} CPU-seconds a second:
its rate is at most {cores} / (relay CPU + classification CPU), and its ratio to the relay's
rate at most {cores} / ({kafka['throughput']['relay_per_second']:,} x ({kafka['throughput']['relay_cpu_us']:.2f} + {1e6 / core:.2f}) µs) = **{kafka_bound:.0%}**, taking classification at its
hot-loop cost above ({1e9 / core:,.0f} ns, the peers' table); in the service the workers pay more than that per
message (caches shared with the Kafka threads on two cores). 85% would need
classification below {max(0.0, kafka_classification_for_85) * 1000:,.0f} ns per comment. That bound
counts the work around classification as free, and the floor row shows it is not: with
classification all but free the service reached {floor_ratio:.0%} of the relay. Against a
broker on other machines the client's share shrinks and the network's waits are the same
for both sides.

The allocator: every message the service produces is allocated on a worker and freed
on a librdkafka thread once delivered, and each consumed message the other way round.
glibc's malloc handles that traffic poorly (in a profile, the workers spent about half
as long in `malloc` as in Hyperscan), so the programs link tcmalloc (gperftools).
Measured on 2 December 2026 (a 25,000-message backlog over 4 partitions then), the same
commit built with and without it, five alternating runs each: the service went from 110-126 k to 141-197 k messages/s (best
126 k to 197 k, +56%) and from 13.1 to 10.5 µs of CPU per message at best; the
workers' share from 6.0 to 4.5 µs. `civicsift scan` changes little (3% less CPU, 4 MiB
more resident memory).

Topic handles: naming the output topic in each produce call has librdkafka look the
topic up under a write lock on the whole client, which its broker threads read-lock all
the time; the workers now keep a handle per output topic (and the relay one for its
topic). Measured on 3 December 2026, six alternating rounds of the commit before and
after: the service's rate 186 k to 210 k messages/s on average (best 207 k to 241 k),
CPU per message 10.1 to 9.1 µs on average, the workers' share 4.9 to 4.4 µs.

Work around classification, trimmed on 3 December 2026 (second pass): verdict metrics
go to per-thread cells added up at scrape (no rwlock, histogram mutex or shared atomic
of the metrics per verdict; the service's own totals stay shared atomics), output topics
are resolved once per (tenant, action), and the record produced for a message takes over
the message's hold (no tracker lock on the worker). Four alternating rounds of the commit
before and after (averages over those rounds, which ran apart from the tables above):
floor-policy workers 1.98 to 1.81 µs per message and the floor run's CPU 4.72 to 4.42 µs;
with the five policies the difference was inside the VM's noise (6.86 to 6.73 µs). What remains of the
workers' own plumbing is mostly the allocator behind librdkafka: in a profile of the
workers after this change, tcmalloc took about 17% of their time, refilling thread caches
that the broker and delivery threads empty by freeing what the workers allocated, and
`rd_kafka_header_add` (one allocation per header, three headers per verdict) was its
largest single caller. The headers are part of the output contract, so they stay.

On a live stream the service holds less than it drains from a backlog: the stream's
producer (generating and producing each comment) runs in this process on the same two
cores, and live batches are smaller. Offered the backlog's rate for 3 s, the median of three runs
(the best would be a fast spell of this VM, and 90% of it more than a slow spell holds),
it held **{kafka['live_ceiling']['held']:,.0f} comments/s**, its live ceiling. End-to-end latency (input
message timestamp to the broker's acknowledgement of its verdict) at a steady 50% and
90% of that ceiling, 15 s each (Kafka timestamps are whole milliseconds, so are these).
Percentiles are over every comment offered: one never answered (the development broker
drops what a backlog pushes past ~5 MB per partition) ranks above all answered ones.

| load | comments/s | offered | answered | p50 | p99 | p99.9 |
|---|---:|---:|---:|---:|---:|---:|
""" + "".join(f"| {l['share']:.0%} | {l['rate']:,.0f} | {l['offered']:,} | {l['verdicts']:,} | {latency_cell(l['p50_ms'])} | {latency_cell(l['p99_ms'])} | {latency_cell(l['p999_ms'])} |\n" for l in kafka["latency"]) + f"""
## `civicsift scan`, whole process (start-up from the compile cache included)

| run | comments/s | seconds | CPU s per million comments | peak RSS |
|---|---:|---:|---:|---:|
""")
for t, (rate, s, rss, cpu) in scan_runs.items():
    md.append(f"| 500,000 comments, {t} thread(s) | {rate:,.0f} | {s:.2f} | {cpu / 0.5:.2f} | {rss:.0f} MiB |\n")
one_thread_ns = (scan_runs[1][1] - warm) / 500000 * 1e9
two_thread_ns = (scan_runs[2][1] - warm) / 500000 * 1e9
core_scaling = layers["ClassifyPath x2"][1] / layers["ClassifyPath"][1]
scan_scaling_note = (
    ": what two threads lose beyond that is the scan's own work around them (the thread that "
    "reads and the one that applies the stream state in input order and writes share the two "
    "cores with the two workers)" if core_scaling > one_thread_ns / two_thread_ns else
    ": the machine, not the scan's threads, keeps it from 2x")
scan_overhead = two_thread_ns / scan_path_floor - 1
target_ns = (0.5 - warm) / 500000 * 1e9
scan_own_work_note = (f"The scan's two threads took {scan_overhead:.0%} more per comment than that: its own "
                      "reading, ordering and writing, on the same two cores" if scan_overhead >= 0.01 else
                      "The scan's two threads took no more than that, within this VM's noise")
path_vs_target_note = (
    f"The path alone is above the {target_ns:,.0f} ns the target allows: civicsift's classification itself, "
    "not the scan around it, is what 1,000,000/s would need faster." if scan_path_floor > target_ns else
    f"The path alone is within the {target_ns:,.0f} ns the target allows: the scan's own work is what stands "
    "between it and 1,000,000/s.")
md.append(f"""
Where 1,000,000/s stands: it means 500,000 comments in 0.5 s, start-up included, so
{(0.5 - warm) / 500000 * 1e9:,.0f} ns of wall time per comment once started ({warm:.2f} s,
below). One thread spends {one_thread_ns:,.0f} ns per comment in the whole process (reading,
classifying in order, writing; the classification core alone is
{layers['ClassifyPath'][0]:,.0f} ns); two threads take {two_thread_ns:,.0f} ns, {one_thread_ns / two_thread_ns:.2f}x
as fast. The classification core alone, two threads on their own halves of the corpus
and nothing else running, went {core_scaling:.2f}x as fast as one in its run (the table of
both cores above){scan_scaling_note}. The target needs that {two_thread_ns:,.0f} ns down to
{(0.5 - warm) / 500000 * 1e9:,.0f}. Timed just before and just after the scan runs, the whole path
alone on both cores (`BM_ClassifyPath` on two threads: decode, classify, write, nothing of
the scan's reading, ordering or output) took {scan_path_floor:,.0f} ns of wall time per comment
(the lower of the two). {scan_own_work_note}. {path_vs_target_note}

Trimmed on 3 December 2026 (third pass): each batch takes over the buffer its lines were
read into (the reader goes on in the batch's previous one) instead of a copy of every
line, batches are written with one `write(2)` each instead of through stdio's buffer,
match offsets are written with `to_chars`, and cached databases are deserialised from a
mapping of the file. Six alternating runs of 500,000 lines on two threads, before and
after: 0.652 to 0.627 s on average (CPU 1.23 to 1.18 s); on one thread 1.035 to 1.010 s;
outputs identical. Where the CPU of a two-thread scan goes after that, by thread (a
profile): the two workers 80%, the ordered stage with start-up 14% (start-up alone is
about a third of it: YAML parsing, pattern tables, the cached databases), the reader 5%.
Start-up (0.13 s of wall time then, on both cores) was in a profile a third yaml-cpp parsing
the five policies and their lexicons, a third building the pattern tables and loading the
cached databases, and the rest mostly loading the process (30 shared libraries and
tcmalloc's page map: `civicsift --version` alone took 0.025 s then).

Trimmed on 7 December 2026: each policy file has a snapshot in the compile cache (its
rules and pattern tables as bytes, named by the program's build id, the CPU features
and the file's path, used while the file and its lexicons hash to the version it was
made from), so start-up no longer parses YAML or builds tables: 1.05 billion
instructions to 84 million (callgrind, no input). What remained was the kernel: page
faults writing the 10 MiB of deserialised databases, one per 4 KiB page and dear on this
VM, so the databases of 1 MiB or more are now deserialised from the cache into memory
of their own on transparent huge pages (page faults 5,650 to 3,200 per start-up). Five interleaved runs of each, the
program before and after: start-up 151 to 75 ms, 500,000 lines on two threads 0.867 to
0.787 s, outputs identical (timed apart from the table above; this VM's speed drifts).

Trimmed on 6 December 2026: the text that duplicate-post rules compare (`pickering`'s, one
comment in five) is normalised sixteen bytes at a time where it is printable ASCII with
single spaces; its byte loop had been a third of `classify`'s own time in a profile. Over
the 500,000 generated texts it went from about 265 to 54 ns per text; a whole one-thread
`civicsift scan` of 50,000 lines from 1.668 to 1.626 billion instructions (callgrind,
-2.5%); outputs identical, and the two normalisations agree on 1.5 million texts (the
500,000 lines and the labelled corpora, whole and with their first bytes cut) and on random
bytes. Wall-clock runs on this VM varied by 15% that day, more than the change.

![threads](bench/plots/threads.png)

## Policy compilation

All five tenants: **{cold:.1f} s cold** (`civicsift check --no-cache`, which also runs
every rule's examples), **{warm:.2f} s** for a whole `civicsift scan` start-up with
the policies from their snapshots and the databases from the cache. The tenants share
their databases (one of each part for all five, each tenant reading its own patterns'
hits), so each row gives the same databases, those it scans.

| tenant | rules | patterns | databases | compile |
|---|---:|---:|---:|---:|
""")
for row in tenant_rows:
    md.append(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]} s |\n")
md.append("""
## Scaling with comment length (one thread, `windsor`)

| text bytes | comments/s | MB/s of text |
|---:|---:|---:|
""")
for size, rate, mbs in length_rows:
    md.append(f"| {size:,} | {rate:,} | {mbs} |\n")
md.append("""
![length](bench/plots/length.png)

## Scaling with pattern count (one synthetic tenant of plain terms, one thread)

| terms | comments/s | compile + check |
|---:|---:|---:|
""")
for count, rate, cs in pattern_rows:
    md.append(f"| {count:,} | {rate:,} | {cs} s |\n")
md.append(f"""
The whole `civicsift scan` process over the 50,000 comments, all addressed to this one
tenant. Throughput barely depends on how many plain terms there are (Hyperscan's literal
matcher takes thousands at once); compile time grows with them. A real tenant scans slower
than 10,000 synthetic terms because of what its patterns are (common words that
occur in comments, the regexes, the templates), not how many: `rule_cost` below shows
which rules cost what.

![patterns](bench/plots/patterns.png)
""")

units = ["a", "a.", "f u c k ", "emoji", "zero-width space", "12 aaaa ", "((((", "$1,", "x@x"]
md.append("""
## Hostile input stays linear (issue 7)

The whole path over one comment whose text repeats a hostile unit, from 1 KB to 4 MB
(`BM_HostileText`). Nanoseconds per byte stay flat when time is linear in the size.

| text | """ + " | ".join(f"{size >> 10} KB" for size, _ in hostile[0]) + """ | most growth |
|---|""" + "---:|" * (len(hostile[0]) + 1) + "\n")
growth = {}  # unit -> how much ns per byte grew at most from a size to a larger one, 1 KB left out
for k, rows in sorted(hostile.items()):
    per = [v for _, v in rows]
    growth[units[k]] = max([1.0] + [per[j] / per[i] for i in range(1, len(per)) for j in range(i + 1, len(per))])
    md.append(f"| `{units[k]}` | " + " | ".join(f"{v:.2f}" for v in per) + f" | {growth[units[k]]:.1f}x |\n")
worst = max(growth, key=growth.get)
grown = [u for u, g in growth.items() if g > 2]
md.append(f"""(ns per byte; the 1 KB column carries the fixed per-comment cost and is left out of the last
column, which is the largest ratio of a size's ns per byte to a smaller size's. Each size is
timed after one untimed pass, so the buffers have grown to it.) Quadratic time would grow 4,096x from
1 KB to 4 MB; the largest growth here is {growth[worst]:.1f}x (`{worst}`).
""" + (f"More than 2x: {', '.join(f'`{u}`' for u in grown)}. Short runs of multi-megabyte comments on "
       "this VM swing that much between invocations (page faults and the host's caches); a row that "
       "grew this way in every run would need a look.\n" if grown else ""))

soak = os.path.join(root, "bench", "soak-results.md")
soak_rss = None  # the service's largest resident memory in the soak, MiB
if os.path.exists(soak):  # written by bench/soak (30 minutes; not rerun here)
    soak_text = open(soak).read()
    when = subprocess.run(["git", "-C", root, "log", "-1", "--format=%cs, commit %h", "--", soak],
                          capture_output=True, text=True).stdout.strip() or "not committed"
    heading_end = soak_text.index("\n\n", soak_text.index("## Soak")) + 2
    md.append(soak_text[:heading_end] + f"Not rerun by `bench/run-benchmarks` (it takes 30 minutes): this is the run of {when}.\n\n"
              + soak_text[heading_end:])
    rss_row = [l for l in soak_text.splitlines() if l.startswith("| resident memory")]
    if rss_row:
        soak_rss = float(rss_row[0].strip("|").split("|")[-1])

# Targets of issue 6, from the figures above, each unmet one with the best this
# machine allows: the stage floor is the four stages every comment passes, each timed
# alone in this run, with nothing between them.
best_scan = max(v[0] for v in scan_runs.values())
peak_rss = max(v[2] for v in scan_runs.values())
# How much faster the whole path could get at most: its time over the stage floor, both
# from the same interleaved run. As a ratio it carries over to figures measured minutes
# apart (the peers' rounds), which absolute nanoseconds on this VM do not.
headroom = max(1.0, layers["ClassifyPath"][0] / stage_floor)
profanity_floor = profanity_layers["Decode"][0] + profanity_layers["Skeleton"][0] + profanity_layers["WriteVerdict"][0]
profanity_headroom = max(1.0, profanity_layers["ClassifyPath"][0] / profanity_floor)
ns_of = lambda rate: 1e9 / rate
relay_cpu = kafka["throughput"]["relay_cpu_us"]
floor_at_core = ns_of(core) / headroom  # the stage floor, in the peers' minutes
# With both cores busy (the scan's workers, the Kafka service and its broker threads)
# a comment's stages take two_core_factor of that in wall time, cores times it in CPU.
kafka_stage_bound = kafka_ratio_bound(floor_at_core * cores * two_core_factor / 1000)
scan_floor_seconds = process_start + 500000 * scan_stage_floor / 1e9
kafka_ratio = kafka["throughput"]["civicsift_per_second"] / kafka["throughput"]["relay_per_second"]
toad, obscenity, re2 = npm["@2toad/profanity"], npm["obscenity"], peers["re2_set"]
# (target, wanted, measured, met, best reachable here, whether that best falls short)
targets = [
    ("classification core, five tenants, one thread", ">= 2,000,000/s", f"{core:,.0f}/s", core >= 2e6,
     f"{core * headroom:,.0f}/s", core * headroom < 2e6),
    ("vs RE2::Set", ">= 3x", ratio(core, re2), core >= 3 * re2, ratio(core * headroom, re2), core * headroom < 3 * re2),
    ("vs @2toad/profanity", ">= 3x", ratio(core, toad), core >= 3 * toad, ratio(core * headroom, toad),
     core * headroom < 3 * toad),
    ("vs obscenity", ">= 50x", ratio(core, obscenity), core >= 50 * obscenity, ratio(core * headroom, obscenity),
     core * headroom < 50 * obscenity),
    ("vs @2toad/profanity, profanity policy (like for like)", ">= 3x", ratio(profanity_only, toad),
     profanity_only >= 3 * toad, ratio(profanity_only * profanity_headroom, toad),
     profanity_only * profanity_headroom < 3 * toad),
    ("vs obscenity, profanity policy (like for like)", ">= 50x", ratio(profanity_only, obscenity),
     profanity_only >= 50 * obscenity, ratio(profanity_only * profanity_headroom, obscenity),
     profanity_only * profanity_headroom < 50 * obscenity),
    ("scan p99, comments up to 1 KB", "<= 10 µs", f"{latency['p99_us']:.2f} µs", latency["p99_us"] <= 10, "", False),
    ("`civicsift scan` 500k lines, whole process", ">= 1,000,000/s", f"{best_scan:,.0f}/s (see its section)",
     best_scan >= 1e6, f"{500000 / scan_floor_seconds:,.0f}/s", 500000 / scan_floor_seconds < 1e6),
    ("Kafka path vs relay, same broker", ">= 85%", f"{kafka_ratio:.0%}", kafka_ratio >= 0.85,
     f"{kafka_stage_bound:.0%} ({kafka_bound:.0%} at this code's cost, see above)", kafka_stage_bound < 0.85),
    ("resident memory, five tenants, two workers", "<= 256 MiB",
     f"{peak_rss:.0f} MiB (`scan`)" + (f", {soak_rss:.0f} MiB (`run`, soak)" if soak_rss else ""),
     max(peak_rss, soak_rss or 0) <= 256, "", False),
    ("compile, five tenants, cold", "<= 10 s", f"{cold:.1f} s (with examples)", cold <= 10, "", False),
    ("start-up from the cache", "<= 0.5 s", f"{warm:.2f} s", warm <= 0.5, "", False),
]
md.append("""
## Targets (issue 6)

| target | wanted | measured | | best this machine allows (stage floor) |
|---|---|---|---|---|
""")
for name, want, got, ok, best, short in targets:
    limit = "" if ok or not best else f"at most {best}" + ("" if short else ": **not ruled out**")
    md.append(f"| {name} | {want} | {got} | {'met' if ok else '**not met**'} | {limit} |\n")
open_targets = [t[0] for t in targets if not t[3] and t[4] and not t[5]]
unbounded = [t[0] for t in targets if not t[3] and not t[4]]  # unmet in this run, no floor to set against
md.append(f"""
How far this machine lets each unmet target go. Every comment passes four stages,
timed alone above in one run with their repetitions interleaved (the run, of {RUNS},
whose whole path was fastest): decode (simdjson) {layers['Decode'][0]:,.0f} ns; the skeleton
{layers['Skeleton'][0]:,.0f} ns (the normalisation that finds masked, spaced-out and look-alike
spellings, which the policies require); Hyperscan's scans {layers['Engine'][0]:,.0f} ns (`BM_Engine`:
the databases as compiled from `patterns/` (which the tenants share), over buffers prepared beforehand,
with none of civicsift's own work around them); and the verdict write
{layers['WriteVerdict'][0]:,.0f} ns. Their sum, the **stage floor**, is {stage_floor:,.0f} ns per comment. It
leaves out all that joins the stages (copying the text into the scan buffer, reading
the hits, allow-lists, validators, aggregation), so no implementation of these stages
comes in under it. The whole path took {layers['ClassifyPath'][0]:,.0f} ns in that run: it can get at
most **{headroom:.2f} times** as fast. That ratio, not the nanoseconds (this VM changes speed
from one minute to the next), is what the last column applies to the figures measured
in the peers' rounds:

- **2 M/s** is 500 ns per comment. Hyperscan alone, with these five policies, took
  {layers['Engine'][0]:,.0f} ns: the engine would stop at {1e9 / layers['Engine'][0]:,.0f}/s even with decode, skeleton and
  write free. The whole path measured {core / 2e6:.0%} of the target and can reach at most
  {core * headroom / 2e6:.0%}.
- **Peer ratios** scale the same way: RE2::Set (which runs behind the same decode and
  skeleton), `@2toad/profanity` and `obscenity` at most {headroom:.2f} times the measured
  ratios. Like for like, the profanity policy's own floor (decode, skeleton and write over
  its corpus, {profanity_floor:,.0f} ns against its whole path's {profanity_layers['ClassifyPath'][0]:,.0f} ns in the same run)
  allows at most {profanity_headroom:.2f} times its measured ratios. The npm filters and RE2::Set
  answer less (a yes/no, or which patterns matched: no offsets, clause or verdict; the npm
  filters without reading JSON).
- **`civicsift scan` at 1 M/s** is 500,000 comments in 0.5 s. Start-up counts at
  the least any process pays here, loading it ({process_start:.3f} s, `civicsift --version`):
  civicsift's own start-up ({warm:.2f} s, below) restores each tenant from its snapshot
  and deserialises its databases. With both cores doing nothing but the stages (the four
  stages on two threads, timed just before and just after the scan runs:
  {scan_stage_floors[0]:,.0f} and {scan_stage_floors[1]:,.0f} ns of wall time per comment, the lower counts),
  it takes at least {process_start:.3f} + 500,000 x {scan_stage_floor:,.0f} ns = {scan_floor_seconds:.2f} s: at most {500000 / scan_floor_seconds:,.0f}/s.
- **Kafka at 85% of the relay.** The service does all the relay does plus classification,
  on the same {cores} cores, so its ratio to the relay is at most {cores} / (relay rate x (relay CPU +
  classification CPU)) = {cores} / ({kafka['throughput']['relay_per_second']:,} x ({relay_cpu:.2f} + {floor_at_core * cores * two_core_factor / 1000:.2f}) µs) = {kafka_stage_bound:.0%} with
  the stage floor (its CPU per comment with both cores busy), {kafka_bound:.0%} at the whole path's one-thread cost.

{("Every unmet target" + (" with a floor" if unbounded else "") + " is thus out of reach on this machine") if not open_targets else "Not ruled out by the floor in this run: " + "; ".join(open_targets)}.{(" Not met in this run, with no floor to prove it out of reach: " + "; ".join(unbounded) + ".") if unbounded else ""}
{"What could move these limits is a cheaper set of rules (`bench/rule_cost` ranks them) or a faster machine, not the code around the stages." if not open_targets else "Between the measured figure and its limit lies civicsift's own code around the stages (and, for `scan`, its start-up); the other limits would move only with a cheaper set of rules (`bench/rule_cost` ranks them) or a faster machine."}

Where the time goes (whole path {layers['ClassifyPath'][0]:,.0f} ns): decode
{layers['Decode'][0]:,.0f} ns, skeleton {layers['Skeleton'][0]:,.0f} ns, scan + verdict
{layers['ScanAndVerdict'][0]:,.0f} ns (skeleton included; Hyperscan alone {layers['Engine'][0]:,.0f} ns), write
{layers['WriteVerdict'][0]:,.0f} ns. The scan dominates. A `perf` profile of
`BM_ClassifyPath` (4 December 2026) agrees: Hyperscan 49% of the cycles, civicsift's own
code 38% (the skeleton 17%, decode 8%, classify 4%, JSON escaping in the verdict 3.5%),
simdjson 5%, libc 4%. What was done about it, each with identical verdicts before and after
(500,000 generated comments and the labelled corpora, all five tenants): the raw text and
the skeleton share one scan buffer, the skeleton's bytes with their high bit flipped, so
raw-text regexes find nothing to start on in the skeleton half (-21% scan + verdict);
terms written as templates compile to one skeleton regex rather than thousands of
literals; and the regexes that cannot match without a digit (phone numbers, postcodes,
card numbers, street addresses, prices: 30 of the 38 raw regexes of middlesex-centre, found by
`policy/regex_digits`) live in a second database scanned only over comments holding a
digit, one in six (the raw regexes had cost ~450 ns per comment, a third of the scan);
and the first scans track no starts of matches (7 December 2026): the main and digit
databases are built without Hyperscan's start-of-match flag, a literal's start being its
end less its length, and only where a pattern of variable length (a regex, a template)
matched, about one comment in thirty, is the buffer scanned again by those patterns
compiled with their starts; the digit database's first scan only asks whether any of its
regexes matches and stops at the first hit. With that day's packs this took `BM_Engine`
from 1,650 to 1,220 ns per comment and the whole path from 3,480 to 2,700 ns (interleaved
runs; Hyperscan's instructions per comment -22%), for databases 40% larger (4.0 to 5.6
MiB per tenant, of which the part scanned for every comment went from 2.8 to 1.6 MiB) and
a cold compile of 4.0 to 6.2 s. And the tenants share their databases (7 December 2026,
fifth session): their packs share most patterns (the lexicons), so the 23,295
expressions of the five tenants' databases are 5,516 distinct ones (the main
databases' 14,179 are 3,361), compiled once into one database of each part, 7.5 MiB in
all, in place of five sets of 5.5-6.6 MiB (28.9 MiB) that a mixed stream scanned in
turn. Each tenant reads the shared ids through a table to its own patterns and passes
over other tenants' hits (in the main database 5,641 against 3,552 in 20,000 comments;
Hyperscan's own time still 8% less). Measured against the build before, verdicts
identical: `classify` over 20,000 generated comments, the same policies with their own
databases and shared, best of 11 interleaved passes in six runs, 6-9% less per comment
(2,263-2,376 to 2,118-2,192 ns; sharing the main database alone had saved 3% in the same
fast spell of this VM); `civicsift scan` of 500,000 lines on two threads, four
alternating runs, median 0.95 to 0.87 s, CPU 1.68 to 1.53 s, peak RSS 81 to 67 MiB.
Start-up from the cache stays under 0.1 s (the shared databases and their id table are
cached too); a cold compile takes 8.4 s rather than 6.6 (the shared databases compile
after the tenants' own, which the cache keeps for a reload and for snapshots).
And a template's start is read back from its end (8 December 2026): the first scan,
without start-of-match tracking, reports where each template match ends, and a template
is a finite language (bytes, groups of alternatives, optional parts), so its leftmost
start is found by reading it backwards from there (`policy/template_starts.h`, tested
against Hyperscan's own starts on every template of the packs). The part with starts
now holds only the raw-text regexes and is scanned over the raw text alone, in about one
comment in a hundred instead of one in thirty: it had cost ~4.6 µs per such comment,
most of it the tracking's set-up whatever the match's length. Measured against the build
before, both pinned to the same core (one of this VM's two cores ran 35-45% slower than
the other for a while that day), four interleaved rounds: `BM_Engine` 1,309-1,412 to 1,215-1,323 ns
(-6%), the whole path 2,511-2,703 to 2,442-2,629 ns (-2 to -4%; reading the starts
back is ~1% of it); the shared databases 7.5 to 5.1 MiB, resident memory of a
`civicsift scan` 67 to 54 MiB, the five tenants' cold compile on one core 13.7 to
10.5 s; verdicts identical (500,000 generated comments, 3,772 examples, SMS and OLID).
It also mended templates whose alternatives sit at the top level ("darn it|heck no"):
their regex read as " darn it" or "heck no " (which "check no" holds); each template's
regex is now one group between its framing spaces.
Outside the scan, the stream state (duplicate posts, repeat offenders) keeps its
per-author history in Abseil's flat hash maps: the node-based maps before them had cost
~8% of a `civicsift scan`'s CPU. `build/bench/rule_cost patterns/<tenant>.yaml` ranks
rules by cost.

What is left, measured on `windsor` (scan + verdict, by leaving parts out of the policy):
its raw regexes ~300 ns per comment, two thirds of that the digit database, and most of
that one rule, the street address (`\\d{{1,5}}` then one or two words then a street type):
600-800 ns per comment that holds a digit (those average 581 bytes). Five equivalent
rewrites of it cost the same; without start-of-match tracking it costs a quarter less
(which the first scan of the digit database now has, above); still half of that scan's
time on 7 December 2026 (978 against 509 ns per comment with a digit without it). Bounding its repeats (at most 3 spaces between words,
words of at most 26 letters) cut it by 37% on 3 December 2026 (1,210 to 765 ns per
comment holding a digit, the same 146 matches in 40,000 generated comments), but it was
left as it is: the bounded rule misses an address spaced out to slip past it. The 52 templates ~150 ns; the ~3,400 literals, most of
the rest, because comments are full of the common words the lexicons share letters with:
10,000 random terms cost ~250 ns (table above). The masked spellings of single-word
terms (`f*ck`, `fu*k`), ~7,000 literals per tenant and half of each database, are no
longer compiled but looked up after the scan for the words that hold a mask
(`policy/masked_terms.h`). Measured on 2 December 2026 against the build before, best
of six interleaved runs: Hyperscan alone 945 to 898 ns per comment (the smaller
databases compete less for the cache), the whole path 2,009 to 1,929 ns, `civicsift
scan` of 500,000 comments on one thread 1.38 to 1.28 s, start-up from the cache 0.15
to 0.11 s, the cold compile 1.5 to 1.1 s; verdicts identical. No single pattern dominates: taking any one template or regex out of
`windsor`'s main database saves at most ~18 ns (measured for each of its 60). The five
tenants also compete for the cache: the same 20,000 comments classified by one tenant's
policy alone cost 23% less than each by its own tenant's, as a real stream comes (1,866
ns on average over the five against 2,423, 7 December 2026, before the shared database);
sharing their databases takes back part of that (6-9%, above).
Hyperscan's share by part, all five tenants, each part left out of every policy in turn
(2 December 2026, best of 15 passes over 20,000 prepared buffers, three interleaved
rounds): the literals alone ~305 ns per comment, the templates ~215 ns more, the raw
regexes of the main database ~90 ns, the digit database ~300 ns. Within the digit
database (`windsor`, its 30 regexes over the 9,611 of 60,000 generated comments that
hold a digit), leaving out the street address saves 644 of 1,221 ns per such comment;
no other regex saves more than ~90.

Tried and not kept, each measured against the build before it: scanning the street address
only in comments that hold one of its street words (the words are in 69% of the comments
with a digit, and that scan plus the confirming one cost 2,211 ns per such comment against
1,265); the digit database without start-of-match tracking, the start found by a second
scan of the comments it matched (3 December 2026: 12% faster, but a 3.7x larger database,
and 9% of the comments with a digit would pay a second scan of ~1,200 ns: no net gain;
what landed on 7 December, above, differs in that the first scan stops at the first hit
and most comments with a digit then need no second scan); the skeleton's
block path without storing each byte's source offset and run length (no change: those
stores are not its cost); one
database per part (skeleton, raw regexes, digit regexes), each scanning only its bytes
(~100 ns slower per comment: a scan's fixed cost outweighs the bytes saved); literals
without their closing space, checked after the match (slower: prefix matches); marking
each word's last letter so literals need no closing space (same speed in a literals-only
test); `-march=native` (no change: Hyperscan and simdjson pick their AVX-512 code at run
time already), nor for the decoder alone (4 December 2026: `BM_Decode` 151-160 ns against
151-165; simdjson's On Demand front end compiles for `fallback` at baseline x86-64, but
its stage 1 and string parsing dispatch at run time); link-time optimisation (slower); a block path for any ASCII separator in
the skeleton (slower); classifying a batch grouped by tenant (batches of 256 to 1,024
gained 2-5%: the databases need runs of thousands to stay warm); the databases on
transparent huge pages (no change in scan speed measurable on this VM; those of 1 MiB or
more loaded from the cache have been on huge pages since 7 December, for start-up's
sake, above); start-of-match tracking
left out of the 52 templates alone (3 December 2026, `BM_Engine` in three interleaved rounds:
772-826 ns against 778-831, no change; the start would then have needed a second scan)
or out of the raw regexes alone (slower: 827-861 ns). Out of the whole main database, with
the larger packs of 7 December, it paid (above). Templates behind gates (7 December
2026, second session): the 169 templates of `windsor` cost about a quarter of its
classification (1,832 ns per comment with them, 1,360 without, one process, best of 9
interleaved passes over 20,000 generated comments), so each template whose every match
holds one of a few rare strings ("kill you", " got the lean ") was compiled into the
part with starts alone, and those strings went into the main database as literals that
call for that part's scan: 138 templates gated, 2,392 gate literals, 6% of comments
scanned twice. It saved 7% of `windsor`'s time (1,711 against 1,832 ns), but gates
exact enough to rely on needed a template's written spaces to be word breaks every match
has, which alone made the templates dearer: over five tenants, classify's instructions
for 20,000 comments went from 318.7 M (templates as they are) to 335.4 M (spaces
required) and 307.8 M (spaces required and gated), 3% in all. The gate literals cost
most of what they save (287.7 M without the second scans), and with fewer strings per
gate (at most 16) 17% of comments needed the second scan (370.8 M).
Templates of few spellings compiled as those spellings' literals (8 December 2026, the
five tenants, best of 11 interleaved passes): slower at every size tried, 1.4% for those
of at most 100 spellings (16,709 more literals), 2.7% at 400, 7.9% at 2,000 (174,050
more); literals are not free either (the ~4,800 distinct ones of the five packs cost
~460 ns per comment over the skeleton alone, the ~350 templates ~900 ns alone, ~1,170
together).
""")
open(args.out, "w").write("".join(md))
log(f"wrote {args.out}")
