"""The custom resources the overlays render (ServiceMonitor, PrometheusRule, and with the external-secrets
component ExternalSecret) are valid against their operators' own schemas, vendored in tests/deploy/crd-schemas
(kubernetes-validate only warns that it has no schema for them)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from tests.support.deploy import OVERLAYS, build_overlay, build_with_components, find_all, secret_refs

SCHEMAS = Path(__file__).parent / "crd-schemas"
SCHEMA_OF = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrule_v1.json",
    ("external-secrets.io/v1", "ExternalSecret"): "external-secrets.io_externalsecret_v1.json",
}
WORKLOADS = ("Deployment", "CronJob", "Job")


def _validator(document: dict) -> Draft7Validator:
    name = SCHEMA_OF.get((document["apiVersion"], document["kind"]))
    assert name, f"no vendored schema for {document['apiVersion']} {document['kind']}"
    return Draft7Validator(json.loads((SCHEMAS / name).read_text()))


def _errors(document: dict) -> list[str]:
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in _validator(document).iter_errors(document)]


def _custom(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if "." in doc["apiVersion"].split("/")[0] and doc["kind"] in {kind for _, kind in SCHEMA_OF}]


def test_vendored_schemas_are_the_attributed_files():
    table = re.findall(r"^\| (\S+\.json) \| [^|]+ \| `([0-9a-f]{64})` \|$", (SCHEMAS / "README.md").read_text(), re.MULTILINE)
    assert {name for name, _ in table} == set(SCHEMA_OF.values()) == {path.name for path in SCHEMAS.glob("*.json")}
    for name, digest in table:
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, f"{name} differs from the catalog's"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_resources_are_valid(overlay):
    custom = _custom(build_overlay(overlay))
    assert sorted(doc["kind"] for doc in custom) == ["PrometheusRule", "ServiceMonitor"]
    for doc in custom:
        assert _errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_external_secrets_component_is_valid_and_creates_every_secret_the_workloads_read(overlay):
    docs = build_with_components(overlay, "external-secrets")
    external = find_all(docs, "ExternalSecret")
    for doc in external:
        assert _errors(doc) == [], f"ExternalSecret/{doc['metadata']['name']}"
        assert doc["metadata"]["namespace"] == "maximus-immunity"
    provided = {(doc["spec"]["target"]["name"], item["secretKey"]) for doc in external for item in doc["spec"]["data"]}
    read = {ref for kind in WORKLOADS for workload in find_all(docs, kind) for refs in secret_refs(workload).values() for ref in refs}
    assert read == provided, f"read but not provided: {read - provided}; provided but unused: {provided - read}"
    assert {doc["spec"]["target"]["name"] for doc in external} == {
        "postgres-immunity-secret", "postgres-immunity-owner-secret", "hitl-api-keys"}
    assert find_all(docs, "Secret") == [], "the operator creates the Secrets; none is rendered"
    # Without the component, nothing of it is rendered.
    assert find_all(build_overlay(overlay), "ExternalSecret") == []


@pytest.mark.parametrize(
    ("kind", "break_it"),
    [
        ("ServiceMonitor", lambda doc: doc["spec"]["endpoints"][0].update(scrapeTimeout="ten seconds")),
        ("PrometheusRule", lambda doc: doc["spec"]["groups"][0].update(rules="not a list")),
        ("ExternalSecret", lambda doc: doc["spec"]["target"].update(creationPolicy="Sometimes")),
        ("ExternalSecret", lambda doc: doc["spec"].update(secretStore={"name": "x"})),
    ],
    ids=["servicemonitor-duration", "prometheusrule-rules", "externalsecret-policy", "externalsecret-unknown-field"],
)
def test_the_schemas_refuse_a_broken_object(kind, break_it):
    """The validation can fail: each schema refuses a plausible mistake in an object it accepted."""
    (doc,) = [doc for doc in build_with_components("production", "external-secrets") if doc["kind"] == kind][:1]
    broken = copy.deepcopy(doc)
    break_it(broken)
    assert _errors(doc) == [] and _errors(broken), f"{kind}: the schema accepted {broken}"
