#!/usr/bin/env python3
"""Syntax and consistency checks for deploy/ (nothing here runs Docker or Kubernetes).

usage: deploy_check.py --repo DIR --exposition FILE

FILE is a Prometheus text exposition of `civicsift run` (a scrape of GET /metrics).
Checks: every YAML file under deploy/ and the Grafana dashboards parse; the exposition
has the contract's metric families; every civicsift_* metric and label that the alert
rules, their unit tests and the dashboard use exists in the exposition; the image name,
metrics port, probe paths, job name, drain budget and config keys agree across the
Dockerfile, compose, Prometheus and Kubernetes files; the PrometheusRule carries
deploy/prometheus/alerts.yaml unchanged. With promtool on PATH it also runs
`promtool check config`, `check rules` and `test rules`.
Prints one line per problem and exits 1 when there is any.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml  # Debian: python3-yaml

PORT = 9464
CONFIG_KEYS = {
    "brokers", "group", "input_topic", "verdict_topic", "dlq_topic", "copy_topic", "threads",
    "max_bytes", "max_queued", "shutdown_timeout_ms", "delivery", "transactional_id",
    "transaction_interval_ms", "patterns", "cache_dir", "kafka", "metrics_address",
    "watch_patterns", "watch_interval_ms", "log_format", "log_level",
    "statistics_interval_ms",  # librdkafka statistics period (the lag gauge)
    "redacted_text",  # verdicts carry the text with matched spans replaced by [category]
    "max_matches",  # matches listed per verdict; "matches_omitted" counts the rest
}
CONFIG_ENUMS = {
    "delivery": {"at_least_once", "exactly_once"},
    "log_format": {"text", "json"},
    "log_level": {"trace", "debug", "info", "warn", "error"},
}
DEFAULT_SHUTDOWN_MS = 30000
DEFAULT_METRICS_ADDRESS = f"0.0.0.0:{PORT}"
# The metrics contract: family -> (type, label names of its samples).
CONTRACT = {
    "civicsift_comments_total": ("counter", {"tenant", "action"}),
    "civicsift_category_matches_total": ("counter", {"tenant", "category"}),
    "civicsift_invalid_input_total": ("counter", {"reason"}),
    "civicsift_dead_letter_total": ("counter", set()),
    "civicsift_messages_consumed_total": ("counter", set()),
    "civicsift_scan_duration_seconds": ("histogram", set()),
    "civicsift_end_to_end_latency_seconds": ("histogram", set()),
    "civicsift_consumer_lag_messages": ("gauge", {"topic", "partition"}),
    "civicsift_assigned_partitions": ("gauge", set()),
    "civicsift_paused_partitions": ("gauge", set()),
    "civicsift_inflight_messages": ("gauge", set()),
    "civicsift_produce_errors_total": ("counter", set()),
    "civicsift_replaced_records_total": ("counter", set()),
    "civicsift_undeliverable_total": ("counter", set()),
    "civicsift_aborted_transactions_total": ("counter", set()),
    "civicsift_policy_info": ("gauge", {"tenant", "version"}),
    "civicsift_policy_reloads_total": ("counter", {"tenant", "result"}),
    "civicsift_build_info": ("gauge", {"version"}),
}
# Labels Prometheus adds at scrape time (static config, PodMonitor); not in the exposition.
TARGET_LABELS = {"instance", "job", "namespace", "pod", "container", "endpoint", "service"}
METRIC_RE = re.compile(r"\bcivicsift_[a-zA-Z0-9_]+")
AGG_OPS = r"(?:sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)"

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def rel(repo, path):
    try:
        return str(Path(path).relative_to(repo))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- exposition

def parse_labels(text):
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"', text or ""))


def load_exposition(path):
    """family -> {"type": str, "labels": set, "samples": int, "le": bool}"""
    families = {}
    lines = Path(path).read_text().splitlines()
    for line in lines:
        m = re.match(r"#\s*TYPE\s+(\S+)\s+(\S+)", line)
        if m:
            families[m.group(1)] = {"type": m.group(2), "labels": set(), "samples": 0}
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+", line)
        if not m:
            problem(path, f"unparsable sample line: {line[:80]}")
            continue
        fam = family_of(families, m.group(1))
        if fam:
            families[fam]["samples"] += 1
            families[fam]["labels"] |= set(parse_labels(m.group(2)))
    return families


def family_of(families, name):
    """The family a series name belongs to (histogram suffixes, OpenMetrics counters)."""
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count", "_created"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and families.get(base, {}).get("type") in ("histogram", "summary"):
            return base
    if name.endswith("_total") and families.get(name[:-6], {}).get("type") == "counter":
        return name[:-6]
    return None


def check_contract(families, where):
    for name, (kind, labels) in CONTRACT.items():
        fam = family_of(families, name)
        if not fam:
            problem(where, f"metric family {name} ({kind}) is missing (a family with no series is not "
                           "exposed: create its known label sets at start)")
            continue
        f = families[fam]
        if f["type"] != kind:
            problem(where, f"{name} is a {f['type']}, the contract says {kind}")
        got = f["labels"] - {"le", "quantile"}
        if f["samples"] and got != labels:
            problem(where, f"{name} has labels {sorted(got)}, the contract says {sorted(labels)}")


# ---------------------------------------------------------------- PromQL references

def matching_paren(s, open_at):
    depth = 0
    for i in range(open_at, len(s)):
        if s[i] == "(":
            depth += 1
        elif s[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return len(s) - 1


def opening_paren(s, close_at):
    depth = 0
    for i in range(close_at, -1, -1):
        if s[i] == ")":
            depth += 1
        elif s[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return 0


def grouping_clauses(expr):
    """(labels, argument text) for each `op by/without (labels) (arg)` or `op(arg) by (labels)`."""
    out = []
    for m in re.finditer(AGG_OPS + r"\s*(?:by|without)\s*\(([^)]*)\)\s*\(", expr):
        start = m.end() - 1
        out.append((m.group(1), expr[start: matching_paren(expr, start) + 1]))
    for m in re.finditer(r"\)\s*(?:by|without)\s*\(([^)]*)\)", expr):
        out.append((m.group(1), expr[opening_paren(expr, m.start()): m.start() + 1]))
    return [([l.strip() for l in labels.split(",") if l.strip()], arg) for labels, arg in out]


class References:
    """Checks civicsift_* metric and label references against the exposition."""

    def __init__(self, families, repo):
        self.families, self.repo, self.count = families, repo, 0

    def family(self, name, where):
        fam = family_of(self.families, name)
        if not fam:
            problem(where, f"metric {name} is not in the exposition")
            return None
        if fam == name and self.families[fam]["type"] == "histogram":
            problem(where, f"{name} is a histogram: use {name}_bucket, _sum or _count")
        return fam

    def label_ok(self, name, label, where, what):
        fam = family_of(self.families, name)
        if not fam or not self.families[fam]["samples"] or label in TARGET_LABELS:
            return
        allowed = set(self.families[fam]["labels"])
        if not name.endswith("_bucket"):
            allowed.discard("le")
        if label not in allowed:
            problem(where, f"{what} uses label {label!r} on {name}, which has {sorted(allowed)}")

    def expr(self, expr, where, legend=None):
        self.count += 1
        names = METRIC_RE.findall(expr)
        for name in names:
            self.family(name, where)
        for m in re.finditer(r"\b(civicsift_[a-zA-Z0-9_]+)\s*\{([^}]*)\}", expr):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)):
                self.label_ok(m.group(1), label, where, "a selector")
        for labels, arg in grouping_clauses(expr):
            for name in METRIC_RE.findall(arg):
                for label in labels:
                    self.label_ok(name, label, where, "by/without")
        for label in re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend or ""):
            if not any(self.has_label(n, label) for n in names) and label not in TARGET_LABELS:
                problem(where, f"legend {{{{{label}}}}} is no label of {sorted(set(names))}")

    def has_label(self, name, label):
        fam = family_of(self.families, name)
        return bool(fam) and (not self.families[fam]["samples"] or label in self.families[fam]["labels"])


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


# ---------------------------------------------------------------- deploy files

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML keeps the last one silently)."""


def _mapping(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = next((k for i, k in enumerate(keys) if isinstance(k, (str, int)) and k in keys[:i]), None)
    if dup is not None:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate key {dup!r}", node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml_files(repo):
    docs = {}
    for path in sorted((repo / "deploy").rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            docs[path.relative_to(repo).as_posix()] = [
                d for d in yaml.load_all(path.read_text(), Loader=_StrictLoader) if d is not None]
        except yaml.YAMLError as e:
            problem(rel(repo, path), f"YAML does not parse: {e}")
    return docs


def first(docs, name):
    return (docs.get(name) or [None])[0]


def by_kind(docs, kind):
    return [(f, d) for f, ds in docs.items() if f.startswith("deploy/k8s/") for d in ds
            if isinstance(d, dict) and d.get("kind") == kind]


def check_config(cfg, where):
    if not isinstance(cfg, dict):
        problem(where, "the configuration is not a mapping")
        return {}
    for key, value in cfg.items():
        if key not in CONFIG_KEYS:
            problem(where, f"unknown configuration key {key!r}")
        elif key in CONFIG_ENUMS and value not in CONFIG_ENUMS[key]:
            problem(where, f"{key}: {value!r} is not one of {sorted(CONFIG_ENUMS[key])}")
    if "kafka" in cfg and not isinstance(cfg["kafka"], dict):
        problem(where, "kafka must be a mapping (write `kafka: {}` when empty)")
    addr = str(cfg.get("metrics_address", DEFAULT_METRICS_ADDRESS))
    if not addr.endswith(f":{PORT}"):
        problem(where, f"metrics_address {addr} is not on port {PORT}")
    return cfg


def seconds(value):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value).strip())
    if isinstance(value, (int, float)):
        return float(value)
    return float(int(m.group(1) or 0) * 60 + int(m.group(2) or 0)) if m and m.group(0) else None


def k8s_config(repo, docs):
    """The civicsift.yaml of the k8s ConfigMap: from the kustomization's configMapGenerator or a ConfigMap."""
    kust = first(docs, "deploy/k8s/kustomization.yaml") or {}
    for gen in kust.get("configMapGenerator") or []:
        for f in gen.get("files") or []:
            key, _, src = f.partition("=")
            src = src or key
            if Path(key).name == "civicsift.yaml":
                path = f"deploy/k8s/{src}"
                return gen.get("name"), first(docs, path), path
    for f, cm in by_kind(docs, "ConfigMap"):
        if "civicsift.yaml" in (cm.get("data") or {}):
            return cm["metadata"]["name"], yaml.safe_load(cm["data"]["civicsift.yaml"]), f
    return None, None, "deploy/k8s"


def check_deploy(repo, docs):
    compose = first(docs, "deploy/docker-compose.yaml") or {}
    services = compose.get("services") or {}
    svc = services.get("civicsift") or {}
    if not svc:
        problem("deploy/docker-compose.yaml", "no service civicsift")

    # Configuration files.
    for name in ("deploy/civicsift.yaml", "deploy/compose/civicsift.yaml"):
        if name not in docs:
            problem(name, "missing")
        else:
            check_config(first(docs, name) or {}, name)
    cm_name, kcfg, kcfg_where = k8s_config(repo, docs)
    if kcfg is None:
        problem(kcfg_where, "no ConfigMap (or configMapGenerator) with civicsift.yaml")
        kcfg = {}
    kcfg = check_config(kcfg, kcfg_where)
    ccfg = first(docs, "deploy/compose/civicsift.yaml") or {}

    # Kubernetes objects.
    kust = first(docs, "deploy/k8s/kustomization.yaml") or {}
    for r in kust.get("resources") or []:
        if not (repo / "deploy/k8s" / r).exists():
            problem("deploy/k8s/kustomization.yaml", f"resource {r} does not exist")
    deps = by_kind(docs, "Deployment")
    if len(deps) != 1:
        problem("deploy/k8s", f"expected one Deployment, found {len(deps)}")
        return
    dep_file, dep = deps[0]
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    containers = pod["spec"]["containers"]
    c = next((x for x in containers if x.get("name") == "civicsift"), containers[0])
    if svc.get("image") != c.get("image"):
        problem(dep_file, f"image {c.get('image')} differs from docker-compose.yaml's {svc.get('image')}")
    port_names = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if port_names.get("metrics") != PORT:
        problem(dep_file, f"container port 'metrics' must be {PORT} (got {port_names})")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = (c.get(probe) or {}).get("httpGet")
        if get is None:
            if probe != "startupProbe":
                problem(dep_file, f"{probe} must be an httpGet on {path}")
            continue
        if get.get("path") != path or get.get("port") not in ("metrics", PORT):
            problem(dep_file, f"{probe} is {get.get('path')} on {get.get('port')}, want {path} on metrics/{PORT}")
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    drain = kcfg.get("shutdown_timeout_ms", DEFAULT_SHUTDOWN_MS) / 1000
    if not grace > drain:
        problem(dep_file, f"terminationGracePeriodSeconds {grace} must exceed shutdown_timeout_ms {drain:.0f} s")
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
    vols = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    cache = env.get("CIVICSIFT_CACHE_DIR")
    if not cache or "emptyDir" not in vols.get(mounts.get(cache), {}):
        problem(dep_file, "CIVICSIFT_CACHE_DIR must name an emptyDir mount (the root filesystem is read-only)")
    cfg_vol = vols.get(mounts.get("/etc/civicsift/civicsift.yaml"), {})
    if cm_name and (cfg_vol.get("configMap") or {}).get("name") != cm_name:
        problem(dep_file, f"/etc/civicsift/civicsift.yaml must come from ConfigMap {cm_name}")
    if kcfg.get("patterns", "/etc/civicsift/patterns") not in mounts:
        problem(dep_file, f"patterns folder {kcfg.get('patterns')} is not mounted")

    for f, s in by_kind(docs, "Service"):
        ports = s["spec"].get("ports") or []
        if not any(p.get("port") == PORT and p.get("targetPort") in ("metrics", PORT) for p in ports):
            problem(f, f"Service must expose {PORT} -> metrics")
        if not set((s["spec"].get("selector") or {}).items()) <= set(pod_labels.items()):
            problem(f, "Service selector does not match the Deployment's pods")
    pms = by_kind(docs, "PodMonitor")
    if not pms:
        problem("deploy/k8s", "no PodMonitor")
    for f, pm in pms:
        if not set((pm["spec"]["selector"].get("matchLabels") or {}).items()) <= set(pod_labels.items()):
            problem(f, "PodMonitor selector does not match the Deployment's pods")
        for ep in pm["spec"].get("podMetricsEndpoints") or []:
            if ep.get("port") != "metrics" or ep.get("path", "/metrics") != "/metrics":
                problem(f, f"endpoint must scrape port 'metrics' path /metrics, got {ep.get('port')} {ep.get('path')}")
            if not any(r.get("targetLabel") == "job" and r.get("replacement") == "civicsift"
                       for r in ep.get("relabelings") or []):
                problem(f, "endpoint must set job=civicsift (the alerts select it)")
    for f, so in by_kind(docs, "ScaledObject"):
        if so["spec"]["scaleTargetRef"].get("name") != dep["metadata"]["name"]:
            problem(f, "scaleTargetRef is not the Deployment")
        for t in so["spec"].get("triggers") or []:
            if t.get("type") != "kafka":
                continue
            md = t.get("metadata") or {}
            for key, want in (("consumerGroup", kcfg.get("group", "civicsift")),
                              ("topic", kcfg.get("input_topic", "comments")),
                              ("bootstrapServers", kcfg.get("brokers"))):
                if md.get(key) != want:
                    problem(f, f"kafka trigger {key} {md.get(key)!r} differs from the ConfigMap's {want!r}")
        parts = compose_partitions(services, kcfg.get("input_topic", "comments"))
        if parts and so["spec"].get("maxReplicaCount") != parts:
            problem(f, f"maxReplicaCount {so['spec'].get('maxReplicaCount')} must equal the {parts} input partitions")
    for f, pdb in by_kind(docs, "PodDisruptionBudget"):
        if not set((pdb["spec"]["selector"].get("matchLabels") or {}).items()) <= set(pod_labels.items()):
            problem(f, "PodDisruptionBudget selector does not match the Deployment's pods")
    alerts = first(docs, "deploy/prometheus/alerts.yaml")
    rules = by_kind(docs, "PrometheusRule")
    if not rules:
        problem("deploy/k8s", "no PrometheusRule")
    for f, pr in rules:
        if pr.get("spec") != alerts:
            problem(f, "spec differs from deploy/prometheus/alerts.yaml: regenerate with "
                       "`python3 tests/deploy_check.py --repo . --write-prometheusrule`")

    # Docker, compose, Prometheus.
    dockerfile = (repo / "deploy/Dockerfile").read_text() if (repo / "deploy/Dockerfile").exists() else ""
    if not dockerfile:
        problem("deploy/Dockerfile", "missing")
    if not re.search(rf"^EXPOSE\s+{PORT}\b", dockerfile, re.M):
        problem("deploy/Dockerfile", f"no EXPOSE {PORT}")
    hc = re.search(r"^HEALTHCHECK\b.*?(?<!\\)$", dockerfile, re.M | re.S)
    if hc and not ("/healthz" in hc.group(0) and str(PORT) in hc.group(0)):
        problem("deploy/Dockerfile", f"HEALTHCHECK must ask /healthz on {PORT}")
    if not any(str(p).split(":")[-1].split("/")[0] == str(PORT) for p in svc.get("ports") or []):
        problem("deploy/docker-compose.yaml", f"civicsift does not publish container port {PORT}")
    test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test") or []))
    if test and "/healthz" not in test:
        problem("deploy/docker-compose.yaml", "civicsift healthcheck must ask /healthz")
    stop = seconds(svc.get("stop_grace_period", "10s"))
    cdrain = ccfg.get("shutdown_timeout_ms", DEFAULT_SHUTDOWN_MS) / 1000
    if stop is None or not stop > cdrain:
        problem("deploy/docker-compose.yaml", f"stop_grace_period {svc.get('stop_grace_period')} must exceed {cdrain:.0f} s")
    if "/etc/civicsift/civicsift.yaml" not in " ".join(map(str, svc.get("volumes") or [])):
        problem("deploy/docker-compose.yaml", "civicsift must mount compose/civicsift.yaml at /etc/civicsift/civicsift.yaml")
    prom = first(docs, "deploy/prometheus/prometheus.yml") or {}
    jobs = {j.get("job_name"): j for j in prom.get("scrape_configs") or []}
    job = jobs.get("civicsift")
    if not job:
        problem("deploy/prometheus/prometheus.yml", "no scrape job civicsift")
    else:
        targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        if f"civicsift:{PORT}" not in targets or job.get("metrics_path", "/metrics") != "/metrics":
            problem("deploy/prometheus/prometheus.yml", f"job civicsift must scrape civicsift:{PORT}/metrics")
    if "alerts.yaml" not in (prom.get("rule_files") or []):
        problem("deploy/prometheus/prometheus.yml", "rule_files must load alerts.yaml")
    for r in rules_of(alerts):
        for j in re.findall(r'\bjob\s*=\s*"([^"]*)"', r.get("expr", "")):
            if j not in jobs:
                problem("deploy/prometheus/alerts.yaml", f"{r.get('alert')} selects job {j!r}, not a job of prometheus.yml")
    ds = first(docs, "deploy/grafana/provisioning/datasources/prometheus.yaml") or {}
    uids = {d.get("uid") for d in ds.get("datasources") or []}
    for path in sorted((repo / "deploy/grafana/dashboards").glob("*.json")):
        try:
            dash = json.loads(path.read_text())
        except ValueError:
            continue  # reported by check_dashboards
        for v in (dash.get("templating") or {}).get("list") or []:
            if v.get("type") == "datasource" and (v.get("current") or {}).get("value") not in uids:
                problem(rel(repo, path), f"default datasource {v.get('current')} is not provisioned ({uids})")


def compose_partitions(services, topic):
    for s in services.values():
        text = " ".join(map(str, s.get("command") or [])) if isinstance(s.get("command"), list) else str(s.get("command") or "")
        m = re.search(rf"--topic\s+{re.escape(topic)}\s+--partitions\s+(\d+)", text)
        if m:
            return int(m.group(1))
    return None


def rules_of(doc):
    return [r for g in (doc or {}).get("groups") or [] for r in g.get("rules") or []]


def check_references(docs, refs):
    for r in rules_of(first(docs, "deploy/prometheus/alerts.yaml")):
        refs.expr(r.get("expr", ""), f"deploy/prometheus/alerts.yaml: {r.get('alert') or r.get('record')}")
    tests = first(docs, "deploy/prometheus/alerts_test.yaml") or {}
    for t in tests.get("tests") or []:
        where = f"deploy/prometheus/alerts_test.yaml: {t.get('name', 'test')}"
        for s in t.get("input_series") or []:
            refs.expr(s.get("series", ""), where)
        for e in t.get("promql_expr_test") or []:
            refs.expr(e.get("expr", ""), where)


def check_dashboards(repo, refs):
    paths = sorted((repo / "deploy/grafana/dashboards").glob("*.json"))
    if not paths:
        problem("deploy/grafana/dashboards", "no dashboard")
    for path in paths:
        where = rel(repo, path)
        try:
            dash = json.loads(path.read_text())
        except ValueError as e:
            problem(where, f"JSON does not parse: {e}")
            continue
        ids = [p.get("id") for p in walk_panels(dash.get("panels"))]
        if len(ids) != len(set(ids)):
            problem(where, "panel ids are not unique")
        for p in walk_panels(dash.get("panels")):
            for t in p.get("targets") or []:
                if t.get("expr"):
                    refs.expr(t["expr"], f"{where}: panel {p.get('title')!r}", t.get("legendFormat"))
        for v in (dash.get("templating") or {}).get("list") or []:
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else str(q or "")
            m = re.match(r"\s*label_values\(\s*([^,]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", q)
            if m:
                refs.expr(m.group(1), f"{where}: variable {v.get('name')}")
                for name in METRIC_RE.findall(m.group(1)):
                    refs.label_ok(name, m.group(2), f"{where}: variable {v.get('name')}", "label_values")


def run_promtool(repo):
    if not shutil.which("promtool"):
        print("deploy_check: promtool not on PATH: rules not checked by promtool", file=sys.stderr)
        return
    prom = repo / "deploy/prometheus"
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yaml"],
                 ["test", "rules", "alerts_test.yaml"]):
        r = subprocess.run(["promtool", *args], cwd=prom, capture_output=True, text=True)
        if r.returncode != 0:
            out = (r.stdout + r.stderr).strip().replace("\n", "\n    ")
            problem("deploy/prometheus", f"promtool {' '.join(args)} failed:\n    {out}")


# ---------------------------------------------------------------- PrometheusRule

class _Block(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent lists under their key


_Block.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def write_prometheusrule(repo):
    alerts = yaml.safe_load((repo / "deploy/prometheus/alerts.yaml").read_text())
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "civicsift", "labels": {"app.kubernetes.io/name": "civicsift"}},
           "spec": alerts}
    head = ("# GENERATED from deploy/prometheus/alerts.yaml (the single source): do not edit.\n"
            "#   python3 tests/deploy_check.py --repo . --write-prometheusrule\n"
            "# Your Prometheus' ruleSelector may require a label (e.g. release: kube-prometheus-stack).\n")
    out = repo / "deploy/k8s/prometheusrule.yaml"
    out.write_text(head + yaml.dump(doc, Dumper=_Block, sort_keys=False, width=1000, allow_unicode=True))
    print(f"wrote {rel(repo, out)}")


# In debian:bookworm-slim already, or never in an image (sanitizer runtimes).
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
SANITIZER_RUNTIMES = ("libasan.", "libubsan.", "libtsan.", "liblsan.")


def check_runtime_libraries(repo, binary):
    """Every shared library the binary needs comes from a package the image installs."""
    stage = (repo / "deploy/Dockerfile").read_text().split("\nFROM ")[-1]  # the runtime stage
    install = re.search(r"apt-get install -y --no-install-recommends(.*?)&&", stage, re.S)
    if not install:
        problem("deploy/Dockerfile", "the runtime stage installs no packages with apt-get")
        return
    installed = set(install.group(1).replace("\\", " ").split()) | BASE_IMAGE_PACKAGES
    dynamic = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic):
        if soname.startswith(SANITIZER_RUNTIMES):
            continue
        owner = subprocess.run(["dpkg", "-S", f"*/{soname}"], capture_output=True, text=True)
        packages = {line.split(":")[0] for line in owner.stdout.splitlines() if line}
        if not packages:
            problem(str(binary), f"needs {soname}, which no installed Debian package provides")
        elif not packages & installed:
            problem("deploy/Dockerfile", f"the runtime image lacks {' or '.join(sorted(packages))} ({soname})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, type=Path, help="the civicsift repository")
    ap.add_argument("--exposition", type=Path, help="a scrape of civicsift's GET /metrics")
    ap.add_argument("--binary", type=Path,
                    help="the built civicsift: the Dockerfile's runtime stage must install its libraries")
    ap.add_argument("--write-prometheusrule", action="store_true",
                    help="regenerate deploy/k8s/prometheusrule.yaml from deploy/prometheus/alerts.yaml and exit")
    args = ap.parse_args()
    repo = args.repo.resolve()
    if args.write_prometheusrule:
        write_prometheusrule(repo)
        return 0
    if not args.exposition or not args.exposition.is_file():
        ap.error("--exposition FILE (a scrape of GET /metrics) is required and must exist")
    families = load_exposition(args.exposition)
    check_contract(families, str(args.exposition))
    refs = References(families, repo)
    docs = load_yaml_files(repo)
    check_references(docs, refs)
    check_dashboards(repo, refs)
    check_deploy(repo, docs)
    if args.binary:
        check_runtime_libraries(repo, args.binary)
    run_promtool(repo)
    for p in problems:
        print(f"deploy_check: {p}")
    if problems:
        print(f"deploy_check: {len(problems)} problem(s)")
        return 1
    print(f"deploy_check: OK ({len(docs)} YAML files, {refs.count} PromQL references, "
          f"{len(families)} metric families)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
