"""Schemathesis against /graphql: generation from the served schema, one request per case, and the checks
every response must pass (no 5xx, no INTERNAL_SERVER_ERROR, no SQL or stack trace in an error).

Runs in a worker thread (schemathesis and requests are synchronous) while the uvicorn server of the `api`
fixture keeps serving on the test's event loop.
"""

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

SEED = 20260801
# A hard stop per role run, whatever the machine: cases past it are drawn but not sent (and counted as such).
RUN_BUDGET_SECONDS = 15.0

# What must never appear in an error that leaves the server (unless the client sent that very text).
LEAKS = [
    re.compile(pattern, re.I)
    for pattern in (
        r"Traceback \(most recent call last\)",
        r'File "[^"]+\.py", line \d+',
        r"sqlalchemy|sqlalche\.me|asyncpg|aiosqlite|sqlite3|psycopg",
        r"\[SQL: |\[parameters: ",
        r"\bSELECT\b[^\"]{0,200}\bFROM\b|\bINSERT INTO\b|\bDELETE FROM\b|\bUPDATE\b \w+ \bSET\b",
        r"\$\d+::[A-Z]+",
        r"invalid byte sequence for encoding|CharacterNotInRepertoire|out of int\d+ range|value out of range",
        r"\b\w+(Error|Exception): ",
    )
]
NON_NULL_VIOLATION = "Cannot return null for non-nullable field"


@dataclass
class Finding:
    operation: str
    problem: str
    query: str
    status: int
    body: str

    def __str__(self) -> str:
        request = json.dumps({"query": self.query})  # the whole request: schemathesis inlines every argument
        return f"{self.operation}: {self.problem} (HTTP {self.status})\n    request:  {request}\n    response: {self.body[:1500]}"


@dataclass
class RunStats:
    role: str
    cases: int = 0
    sent: int = 0
    skipped: int = 0  # generated past the time budget, not sent
    by_operation: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)


def problems(status: int, text: str, query: str) -> list[str]:
    """Everything wrong with one response to `query`."""
    found = []
    if status >= 500:
        found.append(f"HTTP {status}")
    try:
        body = json.loads(text)
    except ValueError:
        return [*found, "response is not JSON"]
    if not isinstance(body, dict):
        return [*found, "response is not a JSON object"]
    for error in body.get("errors") or []:
        extensions = error.get("extensions") or {}
        if extensions.get("code") == "INTERNAL_SERVER_ERROR":
            found.append("INTERNAL_SERVER_ERROR")
        if NON_NULL_VIOLATION in str(error.get("message")):
            found.append("null for a non-nullable field")
        rendered = json.dumps(error, ensure_ascii=False)
        for pattern in LEAKS:
            match = pattern.search(rendered)
            if match and match.group(0).lower() not in query.lower():
                found.append(f"leaks internals: {match.group(0)!r}")
    return found


# --- scalars ----------------------------------------------------------------------------------------------

_known_ids: list[str] = []


def _ids() -> st.SearchStrategy:
    """Mostly ids of rows that exist (so mutations reach the rules, not NOT_FOUND), else anything."""
    existing = st.integers(min_value=0, max_value=63).map(lambda i: _known_ids[i % len(_known_ids)] if _known_ids else str(uuid.UUID(int=i)))
    return st.one_of(
        existing.map(nodes.String),
        existing.map(nodes.String),
        st.uuids().map(str).map(nodes.String),
        st.text(max_size=40).map(nodes.String),
        st.integers(min_value=-(2**31), max_value=2**31 - 1).map(nodes.Int),
    )


def _datetimes() -> st.SearchStrategy:
    """Offsets too (the built-in strategy sends only `Z`): ±14:00 at the ends of the range overflow UTC."""
    moments = st.one_of(
        st.datetimes(),
        st.sampled_from([datetime.min, datetime.max]),
    )
    offsets = st.sampled_from(["Z", "+00:00", "+01:00", "-01:00", "+14:00", "-14:00", ""])
    return st.builds(lambda moment, offset: moment.isoformat() + offset, moments, offsets).map(nodes.String)


# Strings that broke this stack before (a NUL reached PostgreSQL), or sit on a limit, or look like injection.
NASTY_STRINGS = [
    "\x00", "a\x00b", "\x00" * 3, "", " ", "\t", "\n", "\x7f", "\x9f", "\u2028", "\ufeff", "\U0001f4a5",
    "' OR '1'='1", "1; DROP TABLE patches; --", "%", "_", "\\", "${jndi:ldap://x}", "<script>",
    "x" * 201, "x" * 4001, "CVE-2024-1234", "CWE-79", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:X",
    "CVSS:4.0/AV:N", "1.0.0", "0", "-1", "NaN", "9" * 40,
]
# Page sizes and counters around the documented bounds (first: 1..500) and the ends of GraphQL's Int.
EDGE_INTS = [0, -1, 1, 499, 500, 501, 2**31 - 1, -(2**31), 10**6]


def _strings() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=60), st.text(max_size=60).map(lambda text: text + "\x00")).map(nodes.String)


def _ints() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(EDGE_INTS), st.integers(min_value=-(2**31), max_value=2**31 - 1)).map(nodes.Int)


@contextlib.contextmanager
def custom_scalars(known_ids: list[str]) -> Iterator[None]:
    """Register biased strategies for the duration of one run (schemathesis keeps them global): ids of existing
    rows, nasty strings (NUL first), edge integers, timestamps with offsets. Plain random values stay in the mix."""
    saved = dict(CUSTOM_SCALARS)
    _known_ids[:] = known_ids
    schemathesis.graphql.scalar("ID", _ids())
    schemathesis.graphql.scalar("String", _strings())
    schemathesis.graphql.scalar("Int", _ints())
    schemathesis.graphql.scalar("DateTime", _datetimes())
    try:
        yield
    finally:
        CUSTOM_SCALARS.clear()
        CUSTOM_SCALARS.update(saved)
        _known_ids.clear()


# --- the run ----------------------------------------------------------------------------------------------


def has_arguments(operation) -> bool:  # noqa: ANN001 - schemathesis APIOperation
    return bool(operation.definition.raw.args)


Plan = Callable[[object], list[tuple[GenerationMode, int]]]


def fuzz(url: str, headers: dict[str, str], *, role: str, known_ids: list[str], plan: Plan, run_seed: int = SEED) -> RunStats:
    """Every query and mutation of the served schema as `role`, as many examples as `plan(operation)` says
    per generation mode; returns what was generated and sent and every distinct problem."""
    stats = RunStats(role=role)
    started = time.monotonic()
    with requests.Session() as session, custom_scalars(known_ids):
        session.trust_env = False  # never through a proxy: the server is on 127.0.0.1
        schema = schemathesis.graphql.from_url(url, headers=headers, timeout=30)
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode, examples in plan(operation):
                _run_operation(
                    operation, mode, examples, run_seed=run_seed, session=session, headers=headers, stats=stats, deadline=started + RUN_BUDGET_SECONDS
                )
    stats.seconds = time.monotonic() - started
    return stats


def _run_operation(operation, mode: GenerationMode, examples: int, *, run_seed: int, session, headers, stats: RunStats, deadline: float) -> None:  # noqa: ANN001
    seen_problems = {(finding.operation, finding.problem) for finding in stats.findings}

    @seed(run_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,  # @seed fixes the sequence; derandomize would ignore it
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every finding is kept as sent, with its query
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case) -> None:  # noqa: ANN001 - schemathesis Case
        stats.cases += 1
        if time.monotonic() > deadline:
            stats.skipped += 1
            return
        response = case.call(session=session, headers=headers, timeout=30)
        stats.sent += 1
        stats.by_operation[operation.label] = stats.by_operation.get(operation.label, 0) + 1
        for problem in problems(response.status_code, response.text, case.body):
            key = (operation.label, problem)
            if key not in seen_problems:
                seen_problems.add(key)
                stats.findings.append(Finding(operation.label, problem, case.body, response.status_code, response.text))

    one()


def report(runs: list[RunStats]) -> str:
    lines = []
    for run in runs:
        lines.append(
            f"{run.role}: {run.cases} cases generated, {run.sent} sent ({run.skipped} past the budget) in {run.seconds:.1f}s, "
            f"{len(run.findings)} findings"
        )
        lines.extend(f"  - {finding}" for finding in run.findings)
    return "\n".join(lines)

