"""The monitoring component against a real Prometheus (issue 22): Debian's `prometheus` server (the package
scripts/install-deploy-tools.sh unpacks for promtool) scrapes two real `hitl serve` processes ("pods") with the
ServiceMonitor's labels, path, interval and timeout (shortened proportionally) and evaluates the PrometheusRule's
rules (a test copy whose `for:` durations are shortened by the same factor; expressions and thresholds as
shipped). It shows:

- a normal run: every rule healthy, every alert expression (without its threshold) and every dashboard query
  returns data, no alert about the service or its database;
- pod B's database hangs (a relay that accepts and never answers, tests/support/stalling_relay.py): pod B stays
  scrapeable, HITLDatabaseConnectionFailed fires for it, HITLServiceDown does not;
- pod A's database is dropped: the same for pod A;
- both processes killed: HITLServiceDown fires.

Every wait is bounded; the processes are stopped and the databases dropped whatever happens.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.support.databases import fresh_database, off_loop
from tests.support.deploy import dashboard_queries, find, build_overlay, prometheus_rule_spec, tool
from tests.support.pg import pg_admin
from tests.support.processes import ServeProcess, load_demo
from tests.support.server import REVIEWER, SERVICE, VIEWER, free_port, patch_input
from tests.support.stalling_relay import StallingRelay

pytestmark = pytest.mark.slow

# The ServiceMonitor's 30 s / 10 s become 2 s / 0.667 s; every `for:` shrinks by the same factor.
SPEEDUP = 15
NAMESPACE_VARIABLE = "$namespace"
RATE_INTERVAL = "30s"  # Grafana's $__rate_interval: at least four scrape intervals
SUBMIT = "mutation($input: SubmitPatchInput!) { submitPatch(input: $input) { patch { id } } }"


# --------------------------------------------------------------------------- what the cluster would give Prometheus


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def _duration(seconds: float) -> str:
    return f"{max(round(seconds * 1000), 1)}ms"


def scrape_target() -> dict:
    """job, namespace, service, path, interval and timeout as the Prometheus operator derives them from the
    ServiceMonitor and the Service it selects (the production overlay)."""
    docs = build_overlay("production")
    monitor = find(docs, "ServiceMonitor")["spec"]
    services = [doc for doc in docs if doc["kind"] == "Service"
                and all(doc["metadata"].get("labels", {}).get(k) == v for k, v in monitor["selector"]["matchLabels"].items())]
    assert len(services) == 1, "the ServiceMonitor selects exactly one Service"
    service = services[0]
    (endpoint,) = monitor["endpoints"]
    return {
        "job": service["metadata"]["labels"][monitor["jobLabel"]],
        "namespace": monitor["namespaceSelector"]["matchNames"][0],
        "service": service["metadata"]["name"],
        "endpoint": endpoint["port"],
        "path": endpoint.get("path", "/metrics"),
        "interval": _seconds(endpoint["interval"]),
        "timeout": _seconds(endpoint["scrapeTimeout"]),
    }


def test_copy_of_rules() -> dict:
    """The shipped rule groups with every `for:` divided by SPEEDUP; nothing else changed."""
    spec = yaml.safe_load(yaml.safe_dump(prometheus_rule_spec()))
    for group in spec["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _duration(_seconds(rule["for"]) / SPEEDUP)
    return spec


test_copy_of_rules.__test__ = False  # a helper, not a test


def without_threshold(expr: str) -> str:
    """The alert's expression without its final comparison: what must return data in a normal run."""
    return re.sub(r"\s*(?:==|!=|>=|<=|>|<)\s*-?\d+(?:\.\d+)?(?=\s*(?:$|or\b))", "", expr.strip())


# --------------------------------------------------------------------------- a Prometheus of our own


class Prometheus:
    def __init__(self, workdir: Path, target: dict, pods: dict[str, int]) -> None:
        interval, timeout = target["interval"] / SPEEDUP, target["timeout"] / SPEEDUP
        config = {
            "global": {"scrape_interval": _duration(interval), "scrape_timeout": _duration(timeout),
                       "evaluation_interval": _duration(interval / 2)},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{
                "job_name": target["job"],
                "metrics_path": target["path"],
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {
                        "namespace": target["namespace"], "service": target["service"], "endpoint": target["endpoint"], "pod": pod}}
                    for pod, port in pods.items()
                ],
            }],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        (workdir / "rules.yaml").write_text(yaml.safe_dump(test_copy_of_rules(), sort_keys=False))
        self.interval = interval
        self.base = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={self.base.removeprefix('http://')}", "--log.level=warn"],
            cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.base, trust_env=False, timeout=10)
        wait_until(self._ready, within=60, what="Prometheus ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            return self.client.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict]:
        body = self.client.get("/api/v1/query", params={"query": promql}).json()
        assert body["status"] == "success", (promql, body)
        return body["data"]["result"]

    def rules(self) -> list[dict]:
        return [rule for group in self.client.get("/api/v1/rules").json()["data"]["groups"] for rule in group["rules"]]

    def alerts(self, name: str, state: str = "firing", **labels: str) -> list[dict]:
        return [alert for alert in self.client.get("/api/v1/alerts").json()["data"]["alerts"]
                if alert["labels"]["alertname"] == name and alert["state"] == state
                and all(alert["labels"].get(k) == v for k, v in labels.items())]

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def wait_until(condition, *, within: float, what: str, every: float = 0.5) -> None:  # noqa: ANN001
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within:g} s: {what}", pytrace=False)
        time.sleep(every)


# --------------------------------------------------------------------------- the run


def _work(base: str) -> None:
    """A little of everything a normal day has: submissions, a human approval and rejection, a refused call."""
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        def gql(query: str, variables: dict, token: str) -> dict:
            return client.post("/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}).json()

        ids = [gql(SUBMIT, {"input": patch_input(n)}, SERVICE)["data"]["submitPatch"]["patch"]["id"] for n in range(1, 5)]
        assert "errors" not in gql("mutation($id: ID!) { approvePatch(id: $id) { status } }", {"id": ids[0]}, REVIEWER)
        assert "errors" not in gql('mutation($id: ID!) { rejectPatch(id: $id, reason: "breaks login") { status } }', {"id": ids[1]}, REVIEWER)
        refused = gql("mutation($id: ID!) { approvePatch(id: $id) { status } }", {"id": ids[2]}, VIEWER)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.fixture
async def second_pg_database_url(request: pytest.FixtureRequest, tmp_path: Path):
    async with fresh_database("postgresql", request, tmp_path / "b") as url:
        yield url


async def test_alerts_tell_a_database_outage_from_a_service_outage(pg_database_url, second_pg_database_url, tmp_path):
    target = scrape_target()
    assert (target["job"], target["interval"], target["timeout"]) == ("hitl-patch-service", 30, 10)
    (tmp_path / "b").mkdir(exist_ok=True)
    relay = StallingRelay(make_url(second_pg_database_url).port or 5432).start()
    hung_url = make_url(second_pg_database_url).set(port=relay.port).render_as_string(hide_password=False)
    pods: dict[str, ServeProcess] = {}
    prometheus = None
    try:
        load_demo(pg_database_url)  # as in production, pod A serves an active model: its drift is measured
        pods["hitl-a"] = ServeProcess(pg_database_url, tmp_path / "serve-a.log", HITL_DRIFT_CHECK_SECONDS="2")
        pods["hitl-b"] = ServeProcess(hung_url, tmp_path / "serve-b.log")
        for pod in pods.values():
            pod.wait_ready()
        _work(pods["hitl-a"].base)
        _work(pods["hitl-b"].base)
        prometheus = Prometheus(tmp_path, target, {name: pod.port for name, pod in pods.items()})
        _normal_run(prometheus, target)
        _database_outages(prometheus, {"hitl-b": relay.stall, "hitl-a": lambda: _drop(pg_database_url)})  # hangs; dropped
        for pod in pods.values():
            pod.process.kill()
        killed = time.monotonic()
        wait_until(lambda: prometheus.alerts("HITLServiceDown"), within=60, what="HITLServiceDown fires once every pod is killed")
        print(f"HITLServiceDown firing {time.monotonic() - killed:.1f} s after both processes were killed")
    finally:
        for pod in pods.values():
            pod.stop()
        if prometheus is not None:
            prometheus.stop()
        relay.close()


def _drop(url: str) -> None:
    off_loop(asyncio.run, pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


def _normal_run(prometheus: Prometheus, target: dict) -> None:
    job = f'{{job="{target["job"]}"}}'
    # Enough scrapes for every rate() and for HITLDecisionLag's histogram to see the decisions.
    wait_until(lambda: len(prometheus.query(f"count_over_time(up{job}[1m])")) == 2
               and all(float(s["value"][1]) >= 4 for s in prometheus.query(f"count_over_time(up{job}[1m])")),
               within=60, what="four scrapes of each pod")
    wait_until(lambda: all(rule.get("lastEvaluation", "").startswith("2") and rule["health"] != "unknown" for rule in prometheus.rules()),
               within=30, what="every rule evaluated")
    rules = prometheus.rules()
    assert len(rules) == sum(len(group["rules"]) for group in prometheus_rule_spec()["groups"])
    unhealthy = [(rule["name"], rule["health"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not unhealthy, unhealthy

    no_data = [rule["name"] for rule in rules if not prometheus.query(without_threshold(rule["query"]))]
    assert not no_data, f"alert expressions without data in a normal run: {no_data}"
    empty = []
    for expr in dashboard_queries():
        promql = expr.replace(NAMESPACE_VARIABLE, target["namespace"]).replace("$__rate_interval", RATE_INTERVAL)
        if not prometheus.query(promql):
            empty.append(expr)
    assert not empty, f"dashboard queries without data in a normal run: {empty}"
    states = {(a["labels"]["alertname"], a["labels"].get("pod", "")): a["state"]
              for a in prometheus.client.get("/api/v1/alerts").json()["data"]["alerts"]}
    print(f"normal run: {len(rules)} rules ok, every alert expression and {len(dashboard_queries())} dashboard queries "
          f"with data; alerts pending or firing: {states or 'none'}")
    # Nothing wrong, nothing said: no alert about the service or its database is even pending.
    for name in ("HITLServiceDown", "HITLDatabaseConnectionFailed", "HITLGraphQLServerErrors"):
        assert not prometheus.alerts(name, "pending") and not prometheus.alerts(name), name


def _database_outages(prometheus: Prometheus, causes: dict) -> None:
    """Each pod's database fails its own way, at the same time: each pod's HITLDatabaseConnectionFailed fires, and
    HITLServiceDown stays quiet because every pod still answers its scrapes."""
    for cause in causes.values():
        cause()
    started = time.monotonic()
    fired_at: dict[str, float] = {}

    def service_down_quiet() -> None:
        for state in ("pending", "firing"):
            assert not prometheus.alerts("HITLServiceDown", state), f"HITLServiceDown {state} while only databases are out"
        for pod in causes:
            assert [float(s["value"][1]) for s in prometheus.query(f'up{{pod="{pod}"}}')] == [1.0], f"{pod} must stay scrapeable"

    def fired() -> bool:
        service_down_quiet()
        for pod in causes:
            if pod not in fired_at and prometheus.alerts("HITLDatabaseConnectionFailed", pod=pod):
                fired_at[pod] = time.monotonic() - started
        return len(fired_at) == len(causes)

    # The read gives up after HITL_METRICS_REFRESH_TIMEOUT_SECONDS (5), then `for:` (1m / SPEEDUP) and a scrape.
    wait_until(fired, within=60, what=f"HITLDatabaseConnectionFailed fires for {', '.join(causes)}")
    # And it stays that way: HITLServiceDown's own `for:` (2m / SPEEDUP) passes without it.
    hold_until = time.monotonic() + _seconds("2m") / SPEEDUP + 2 * prometheus.interval
    while time.monotonic() < hold_until:
        service_down_quiet()
        time.sleep(prometheus.interval)
    for pod, seconds in fired_at.items():
        print(f"{pod}: HITLDatabaseConnectionFailed firing {seconds:.1f} s after the outage began")
