"""results.json → results.md (Markdown tables) and subscribers.png (latency and RSS against subscribers)."""

from __future__ import annotations

from pathlib import Path


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _lat(stats: dict | None) -> str:
    if not stats or stats.get("median") is None:
        return "—"
    return f"{_ms(stats['median'])} / {_ms(stats['p99'])} ms"


def _burst_cpu(phase: dict) -> str:
    """A burst phase's CPU per submission: the server's, and PostgreSQL's with how busy the machine was (runs before
    these were recorded show the server's only)."""
    server = f"server {phase['server_cpu_ms_per_submission']} ms"
    if "postgres_cpu_ms_per_submission" not in phase:
        return server
    return f"{server} + PostgreSQL {phase['postgres_cpu_ms_per_submission']} ms; machine {phase['machine_cpu_busy']:.0%} busy"


def _met(value: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[value]


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


class _Tracking(dict):
    """The scenarios, remembering the last one looked up (so a row can name the run it comes from)."""

    last: dict = {}

    def get(self, key, default=None):  # noqa: ANN001, ANN201
        value = super().get(key, default)
        self.last = value or {}
        return value


def _rows(results: dict) -> list[tuple[str, str, str, str, str, str]]:
    s = _Tracking(results["scenarios"])
    rows = []

    def add(scenario: str, figure: str, baseline: str, ratio: str, entry: dict) -> None:
        note = f" ({entry['note']})" if entry.get("note") else ""
        origin = s.last.get("from_run")
        if origin:
            scenario += f" [run of {origin['started_at'][:16]}, commit {(origin.get('commit') or '?')[:8]}]"
        rows.append((scenario, figure, baseline, ratio, entry["target"], _met(entry["met"]) + note))

    if (p := s.get("pending_page")) and "figure" in p:
        add(f"pending page of 50, {p['config']['patches']:,} patches / {p['config']['pending']:,} pending (median / p99)",
            _lat(p["figure"]), "raw SQL (asyncpg): " + _lat(p["baseline"]), _x(p["ratio_median"]), p["targets"][0])
    if (p := s.get("pending_page_scale")) and "figure" in p:
        add(f"same page at {p['config']['patches']:,} patches / {p['config']['pending']:,} pending",
            _lat(p["figure"]), f"{p['config']['compared_with']:,} case: " + _lat(p["baseline"]), _x(p["ratio_median"]), p["targets"][0])
    if (p := s.get("pending_groups_page")) and "figure" in p:
        add(f"patchGroups page of 20, {p['config']['patches']:,} patches / {p['config']['pending']:,} pending, "
            f"{p['config']['groups_with_pending']:,} groups (median / p99)",
            _lat(p["figure"]), "pendingPatches page of 50: " + _lat(p["baseline"]), _x(p["ratio_median"]), p["targets"][0])
    if (p := s.get("approvals")) and "figure" in p:
        f, b = p["figure"], p["baseline"]
        add("approvals/s, 16 concurrent clients", f"{f['approvals_per_s_median']:.0f}/s",
            f"plain INSERT: {b['inserts_per_s_median']:.0f}/s", _x(p["ratio_throughput"]), p["targets"][0])
        add("approval latency, 16 concurrent clients (median / p99); server full GCs (over 100 ms)",
            f"{_lat(f['latency_ms'])}; GCs {_gc(f.get('server_gc'))}",
            "plain INSERT: " + _lat(b["latency_ms"]), _x(p["ratio_p99"]) + " (p99)",
            p["targets"][1])
    if (p := s.get("submissions")) and "figure" in p:
        f, b = p["figure"], p["baseline"]
        add("submissions/s, 16 concurrent clients (server CPU per submission; median / p99 latency)",
            f"{f['submissions_per_s_median']:.0f}/s ({f['server_cpu_ms_per_submission_median']} ms CPU; {_lat(f['latency_ms'])})",
            f"plain INSERT: {b['inserts_per_s_median']:.0f}/s", _x(p["ratio_throughput"]), p["targets"][0])
    if (p := s.get("subscribers")) and "levels" in p:
        idle = p["baseline"]["idle_rss_mib"]
        top = max(p["levels"], key=lambda e: e["subscribers"]) if p["levels"] else None
        if top:
            add(f"server RSS with {top['subscribers']:,} patchEvents subscribers, one worker", f"{top['rss_mib']:.0f} MiB", f"idle: {idle:.0f} MiB",
                _x(top["rss_mib"] / idle if idle else None), p["targets"][0])
        two = next((e for e in p["levels"] if e["requested"] == 2000), None) or (p["levels"][1] if len(p["levels"]) > 1 else None)
        if two:
            add(f"event → last of {two['subscribers']:,} subscribers (median / p99)", _lat(two["last_subscriber_ms"]),
                "—", "—", p["targets"][1])
    if (p := s.get("mutation_latency")) and "figure" in p:
        f, b = p["figure"], p["baseline"]
        add("mutation latency with subscribers, steady 5/s (median)", _lat(f["stream"]), "0 subscribers: " + _lat(b["stream"]),
            _x(p["ratio_median"]), p["targets"][0])
        if len(p["targets"]) > 1:
            add("mutation latency with subscribers, steady 5/s (p99)", _lat(f["stream"]), "0 subscribers: " + _lat(b["stream"]),
                _x(p["ratio_p99"]) + " (p99)", p["targets"][1])
    if (p := s.get("cross_replica")) and "figure" in p:
        add("event delivery to a subscriber on the other replica (median / p99)", _lat(p["figure"]),
            "same replica: " + _lat(p["baseline"]),
            "—" if p["extra_p99_ms"] is None else f"{p['extra_p99_ms']:+.1f} ms p99", p["targets"][0])
    if (p := s.get("ml_predict")) and "figure" in p:
        add("XGBoost predict + SHAP, one patch (median / p99)", _lat(p["figure"]), "inplace_predict: " + _lat(p["baseline"]),
            _x(p["ratio_p99"]) + " (p99)", p["targets"][0])
    if (p := s.get("ml_training")) and "figure" in p:
        add(f"training on {p['config']['labelled_patches']:,} labelled patches", f"{p['figure']['seconds']:.1f} s", "—", "—",
            p["targets"][0])
    if (p := s.get("webhook_throughput")) and "figure" in p:
        add(f"webhook events/s delivered by one replica to one local receiver ({p['config']['events']:,} events)",
            f"{p['figure']['events_per_s']:.0f}/s ({p['figure'].get('server_cpu_ms_per_event', '—')} ms server CPU per event)", f"read from the audit table: {p['baseline']['events_per_s']:.0f}/s",
            _x(p["ratio"]), p["targets"][0])
    if (p := s.get("webhook_lag")) and "figure" in p:
        add("webhook lag commit → receiver, steady 50 events/s to 5 endpoints (median / p99)", _lat(p["figure"]),
            "LISTEN + read from the audit table: " + _lat(p["baseline"]), _x(p["ratio_p99"]) + " (p99)", p["targets"][0])
    if (p := s.get("mass_cve_burst")) and "figure" in p:
        f, b, t = p["figure"], p["baseline"], {target["name"]: target for target in p["targets"]}
        insert = f"plain INSERT: {b['per_s']:.0f}/s"
        one, batch = f["submitPatch"], f["submitPatches"]
        add(f"mass-CVE burst: {one['submissions']:,} `submitPatch` from {p['config']['client_processes']} processes, model active, "
            f"{p['config']['subscribers']} pendingQueue and {p['config'].get('group_subscribers', 0)} pendingGroups subscribers"
            + (f", {one['distinct_feature_rows']} distinct model inputs (each explained once)" if "distinct_feature_rows" in one else "")
            + " (CPU per submission; median / p99)",
            f"{one['per_s']:.0f}/s ({_burst_cpu(one)}; {_lat(one['latency_ms'])}); {one['errors']} errors",
            insert, _x(p["ratio_throughput"]), t["submitPatch throughput"])
        add("same: `submitPatch` p99", _lat(one["latency_ms"]), "plain INSERT: " + _lat(b["latency_ms"]), "—", t["submitPatch p99"])
        add(f"same burst through `submitPatches`, batches of {p['config']['batch']}",
            f"{batch['per_s']:.0f}/s ({_burst_cpu(batch)}); {batch['errors']} errors", insert, "—",
            t["submitPatches throughput"])
        if distinct := f.get("submitPatch_distinct_rows"):
            add(f"same `submitPatch` burst with every submission a distinct model input ({distinct['distinct_feature_rows']:,}), "
                "each explained by the model (median / p99)",
                f"{distinct['per_s']:.0f}/s ({_burst_cpu(distinct)}; {_lat(distinct['latency_ms'])}); "
                f"{distinct['errors']} errors", insert, "—",
                {"target": "none (what SHAP costs when nothing repeats)", "met": None, "note": "a figure, not a target"})
        if distinct := f.get("submitPatches_distinct_rows"):
            add(f"same batches with every submission a distinct model input ({distinct['distinct_feature_rows']:,}), each explained by the model",
                f"{distinct['per_s']:.0f}/s ({_burst_cpu(distinct)}); {distinct['errors']} errors", insert, "—",
                {"target": "none (what SHAP costs when nothing repeats)", "met": None, "note": "a figure, not a target"})
        for view, what in (("subscribers", "pendingQueue"), ("group_subscribers", "pendingGroups")):
            if view not in one:
                continue
            add(f"the {what} subscribers' exact page (totalCount = the database's) after each burst; pages per subscriber",
                f"{one[view]['exact_page_after_burst_max_ms']} / {batch[view]['exact_page_after_burst_max_ms']} ms (max); "
                f"{one[view]['pages_during_burst']['max']} pages (limit {one[view]['pages_limit']:.0f}), "
                f"{batch[view]['pages_during_burst']['max']} (limit {batch[view]['pages_limit']:.0f})", "—", "—",
                t["exact page after the burst"])
        decided = f["decideGroup"]
        add(f"`decideGroup` on a group of {decided['members']}", f"{decided['ms']} ms; {decided['audit_rows']} audit rows, "
            f"{decided['applied']} applied, {decided['skipped']} skipped", "—", "—", t["decideGroup audit rows"])
    if (p := s.get("memory_soak")) and "figure" in p:
        f = p["figure"]
        ran = f"{f['duration_s'] / 60:.1f} of {p['config']['seconds'] / 60:.1f} min" if f.get("duration_s") else f"{p['config']['seconds'] / 60:.1f} min"
        add(f"RSS over {ran} of mixed load" + (f" (stopped: {f['aborted']})" if f.get("aborted") else ""),
            f"slope {f['slope_mib_per_h_after_warmup']} MiB/h; {f['start_rss_mib']} → {f['end_rss_mib']} MiB (max {f['max_rss_mib']})",
            f"start: {f['start_rss_mib']} MiB", "—", p["targets"][0])
    return rows


def _gc(pauses: dict | None) -> str:
    if not pauses:
        return "—"  # a run before hitl_gc_pause_seconds existed
    return f"{pauses['full_collections']} ({pauses['pauses_over_100ms']}), {pauses['pause_seconds_total'] * 1000:.0f} ms in all"


def markdown(results: dict) -> str:
    lines = [f"# Benchmark results ({results['mode']})", ""]
    m = results["machine"]
    lines.append(f"Commit `{results['git']['commit'][:12]}`{' + uncommitted app changes' if results['git']['dirty_app_files'] else ''}, "
                 f"{results['started_at']}, wall time {results['wall_s']:.0f} s, command `{results['command']}`.  ")
    lines.append(f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
                 f"PostgreSQL {m['postgresql']['server_version']} (shared_buffers {m['postgresql']['shared_buffers']}); "
                 "servers, PostgreSQL and clients share the machine.")
    lines.append("")
    for note in results["notes"]:
        lines.append(f"- {note}")
    lines += ["", "| scenario | measured | baseline (same run) | ratio | target | result |", "|---|---|---|---|---|---|"]
    for row in _rows(results):
        lines.append("| " + " | ".join(row) + " |")
    subs = results["scenarios"].get("subscribers", {})
    if subs.get("levels"):
        lines += ["", f"Subscribers (one worker; idle RSS {subs['baseline']['idle_rss_mib']:.0f} MiB):", "",
                  "| subscribers | RSS MiB | KiB / subscriber | last subscriber median / p99 | median subscriber median | "
                  "server CPU per event | mutation (paced) median / p99 | server full GCs during the events (over 100 ms) |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in subs["levels"]:
            lines.append(f"| {e['subscribers']:,} | {e['rss_mib']:.0f} | {e['rss_kib_per_subscriber']:.0f} | {_lat(e['last_subscriber_ms'])} | "
                         f"{_ms(e['median_subscriber_ms']['median'])} ms | {e['server_cpu_ms_per_event']:.0f} ms | {_lat(e['mutation_ms_paced'])} | "
                         f"{_gc(e.get('server_gc_during_events'))} |")
    skipped = [f"{k}: {v['skipped']}" for k, v in results["scenarios"].items() if "skipped" in v]
    failed = [f"{k}: {v['failed']}" for k, v in results["scenarios"].items() if "failed" in v]
    if skipped or failed:
        lines += ["", "Not measured in this run:", ""] + [f"- {x}" for x in skipped + failed]
    lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> bool:
    subs = results["scenarios"].get("subscribers", {})
    levels = subs.get("levels") or []
    if not levels:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (uv sync --extra bench): no plot")
        return False
    xs = [e["subscribers"] for e in levels]
    fig, left = plt.subplots(figsize=(8, 4.5), dpi=110)
    left.plot(xs, [e["last_subscriber_ms"]["median"] for e in levels], "o-", color="tab:blue", label="last subscriber, median")
    left.plot(xs, [e["last_subscriber_ms"]["p99"] for e in levels], "s--", color="tab:blue", label="last subscriber, p99")
    left.axhline(250, color="tab:blue", alpha=0.3, linestyle=":", label="250 ms (target at 2,000)")
    left.set_xlabel("patchEvents subscribers (one server worker)")
    left.set_ylabel("mutation sent → event received (ms)", color="tab:blue")
    left.set_yscale("log")
    right = left.twinx()
    right.plot(xs, [e["rss_mib"] for e in levels], "^-", color="tab:red", label="server RSS")
    right.axhline(subs["baseline"]["idle_rss_mib"], color="tab:red", alpha=0.4, linestyle="--", label="idle RSS")
    right.axhline(512, color="tab:red", alpha=0.3, linestyle=":", label="512 MiB (pod limit)")
    right.set_ylabel("RSS (MiB)", color="tab:red")
    right.set_ylim(0, max(560, max(e["rss_mib"] for e in levels) * 1.1))
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    left.legend(handles, labels, loc="upper left", fontsize=8)
    run = subs.get("from_run") or {"mode": results["mode"], "commit": results["git"]["commit"]}  # a merged scenario's own run
    left.set_title(f"HITL service: subscribers vs latency and memory ({run['mode']}, {(run.get('commit') or '?')[:8]})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
