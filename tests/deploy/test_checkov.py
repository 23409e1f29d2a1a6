"""checkov (Kubernetes framework, offline) finds nothing on the built overlays.

A check may only be skipped by an annotation on the resource that carries its reason
(`checkov.io/skipN: CKV_K8S_xx=reason`); there is no global skip list.
"""

from __future__ import annotations

import json

import pytest

from tests.support.deploy import OVERLAYS, build_overlay, build_overlay_text, run, tool


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_has_no_failed_check(overlay, tmp_path):
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(build_overlay_text(overlay))
    proc = run(
        [tool("checkov"), "--framework", "kubernetes", "--skip-download",
         "-o", "json", "-f", str(manifest)],
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOG_LEVEL": "WARNING"},
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if isinstance(report, list):  # several frameworks -> list of reports
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    summary = report["summary"]
    failed = report["results"]["failed_checks"]
    details = "\n".join(f"{c['check_id']} {c['check_name']} -- {c['resource']}" for c in failed)
    assert summary["failed"] == 0 and not failed, f"checkov failed checks on {overlay}:\n{details}"
    assert summary["parsing_errors"] == 0
    assert proc.returncode == 0, proc.stderr[-3000:]

    # It really scanned the workloads (not an empty or unparsed file).
    scanned = {c["resource"].split(".")[0] for c in report["results"]["passed_checks"]}
    assert {"Deployment", "CronJob", "Ingress", "Role", "Service"} <= scanned, scanned
    assert summary["passed"] > 100

    # Every skip is annotated on its resource with a reason.
    docs = {f"{d['kind']}.{d['metadata'].get('namespace', 'default')}.{d['metadata']['name']}": d
            for d in build_overlay(overlay)}
    for skip in report["results"]["skipped_checks"]:
        reason = (skip.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) >= 20, f"{skip['check_id']} on {skip['resource']} skipped without a reason"
        annotations = docs[skip["resource"]]["metadata"].get("annotations", {})
        assert any(k.startswith("checkov.io/skip") and v.startswith(skip["check_id"] + "=")
                   for k, v in annotations.items()), f"{skip['check_id']} skip is not annotated on {skip['resource']}"
