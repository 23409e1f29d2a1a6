"""The container image: Dockerfile structure, build context, and (slow) its install steps.

There is no Docker daemon in CI, so `test_dockerfile_install_steps_produce_a_serving_app` runs the
builder stage's own RUN instructions (parsed from the Dockerfile, ENV paths moved under a temp dir,
sources copied as its COPY lines say) with /bin/sh like Docker would, then starts the runtime
stage's CMD from the resulting venv against a temporary SQLite database and checks /ready and the
HEALTHCHECK command.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.deploy import ROOT, clean_app_env, free_port, http_get, run, start_app, stop_app, uv_command

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) with continuation lines joined and comments dropped."""
    lines, buf = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + "\n"
            continue
        lines.append(buf + raw)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.strip().partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.I)
            assert m, f"cannot parse FROM {rest}"
            base = re.sub(r"\$\{?(\w+)\}?", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
            stages.append(Stage(base=base, name=m.group(2)))
        elif not stages:
            assert op == "ARG", f"only ARG may precede FROM, found {op}"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def env_pairs(args: str) -> dict[str, str]:
    """ENV k=v k2="v 2" ... (the key=value form)."""
    return dict(tok.split("=", 1) for tok in shlex.split(args))


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec (JSON) form: {args}"
    return json.loads(args)


def _stages():
    _args, stages = parse_dockerfile(DOCKERFILE.read_text())
    return stages


# --------------------------------------------------------------------------- structure


def test_dockerfile_is_multi_stage_slim_and_cpu_only():
    stages = _stages()
    assert len(stages) >= 2, "multi-stage build expected"
    builder, runtime = stages[0], stages[-1]
    assert builder.name == "builder" and runtime.name == "runtime"
    for stage in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage.base), f"slim Python 3.11 base, got {stage.base}"
    # runtime: only the venv from the builder, no sources, no build tools
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], copies
    assert not any("uv" in r.split() or "pip install" in r for r in runtime.all("RUN"))
    text = DOCKERFILE.read_text()
    assert "uv export --frozen --no-dev" in text, "install the locked requirements"
    assert "--require-hashes" in text
    assert not re.search(r"(pip|uv pip) install[^\n]*\bxgboost\b(?!-cpu)", text), "never install the CUDA xgboost wheel"


def test_runtime_stage_user_port_healthcheck_cmd():
    runtime = _stages()[-1]
    users = runtime.all("USER")
    assert users, "USER missing"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 10000), f"non-root USER, got {user}"
    assert "8027" in runtime.all("EXPOSE")
    (health,) = runtime.all("HEALTHCHECK")
    assert "CMD" in health and "/health" in health
    cmd = exec_form(runtime.all("CMD")[-1])
    assert cmd[:2] == ["hitl", "serve"], cmd
    assert not runtime.all("ENTRYPOINT"), "no ENTRYPOINT: Kubernetes runs `hitl db upgrade` / `hitl ml train` as commands"
    env = {}
    for e in runtime.all("ENV"):
        env.update(env_pairs(e))
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_lockfile_resolves_cpu_xgboost_only():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    names = {p["name"] for p in lock["package"]}
    assert "xgboost-cpu" in names
    assert "xgboost" not in names and not any(n.startswith("nvidia-") for n in names)
    proc = run([*uv_command(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"], cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    reqs = {re.split(r"[=;\s]", line)[0] for line in proc.stdout.splitlines() if line and line[0].isalnum()}
    assert "xgboost-cpu" in reqs and "xgboost" not in reqs


def test_dockerignore_is_an_allow_list_of_the_copied_sources():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "start from excluding everything"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for stage in _stages():
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            copied.update(shlex.split(args)[:-1])
    copied = {c.rstrip("/").removeprefix("./") for c in copied}
    assert copied == allowed, f"COPY sources {copied} vs .dockerignore allow-list {allowed}"
    for secret_ish in (".git", ".venv", ".cache", "tests", "deploy", ".env"):
        assert secret_ish not in allowed


# --------------------------------------------------------------------------- the install steps


def _builder_steps():
    """(copies, env, workdir, run bodies) of the builder stage; RUN flags (--mount) dropped."""
    builder = _stages()[0]
    env: dict[str, str] = {}
    workdir = "/"
    copies: list[tuple[list[str], str]] = []
    runs: list[str] = []
    for op, args in builder.instructions:
        if op == "ENV":
            env.update(env_pairs(args))
        elif op == "WORKDIR":
            workdir = args
        elif op == "COPY":
            parts = shlex.split(args)
            assert not any(p.startswith("--") for p in parts), "builder COPY flags are not modelled"
            copies.append((parts[:-1], parts[-1]))
        elif op == "RUN":
            body = args
            while body.startswith("--"):
                body = body.split(None, 1)[1]
            runs.append(body)
    return builder, copies, env, workdir, runs


@pytest.mark.slow
def test_dockerfile_install_steps_produce_a_serving_app(tmp_path):
    builder, copies, env, workdir, runs = _builder_steps()
    root = tmp_path / "image"

    def in_image(path: str) -> Path:
        return root / path.lstrip("/")

    # uv itself: the Dockerfile bootstraps it with pip; here we use the machine's uv, same version.
    uv_version = next(a.split("=", 1)[1] for o, a in builder.instructions if o == "ARG" and a.startswith("UV_VERSION="))
    bootstrap = [r for r in runs if re.fullmatch(r'pip install --no-cache-dir "uv==\$\{UV_VERSION\}"', r.strip())]
    assert len(bootstrap) == 1, "expected exactly one RUN that installs uv"
    runs.remove(bootstrap[0])
    uv = uv_command()
    local_uv = run([*uv, "--version"]).stdout.split()[1]
    assert local_uv == uv_version, f"machine uv {local_uv} != Dockerfile UV_VERSION {uv_version}: keep them equal"

    src = in_image(workdir)
    src.mkdir(parents=True)
    for sources, dest in copies:
        target = src / dest
        for source in sources:
            path = ROOT / source
            to = target / path.name if dest.endswith("/") or len(sources) > 1 else target
            if path.is_dir():
                shutil.copytree(path, to, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, to)

    # The RUN lines call `uv` by name: put exactly that uv first on PATH.
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    (shim_dir / "uv").write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(p) for p in uv) + ' "$@"\n')
    (shim_dir / "uv").chmod(0o755)
    build_env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTHONHOME"))}
    build_env["PATH"] = f"{shim_dir}:{build_env['PATH']}"
    build_env.update({k: (str(in_image(v)) if v.startswith("/") else v) for k, v in env.items()})
    for body in runs:
        proc = run(["/bin/sh", "-c", body], cwd=src, env=build_env, timeout=900)
        assert proc.returncode == 0, f"RUN failed:\n{body}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"

    venv = Path(build_env["VIRTUAL_ENV"])
    # CPU-only xgboost in the installed environment
    freeze = run([*uv, "pip", "freeze", "--python", str(venv / "bin" / "python")], timeout=60)
    installed = {re.match(r"[A-Za-z0-9._-]+", line).group(0).lower() for line in freeze.stdout.splitlines() if line}
    assert "xgboost-cpu" in installed and "xgboost" not in installed
    assert not any(n.startswith("nvidia-") for n in installed)
    assert "hitl-patch-service" in installed

    # Runtime stage: its ENV, run from an empty working directory (like WORKDIR /app).
    runtime = _stages()[-1]
    run_env = {}
    for e in runtime.all("ENV"):
        run_env.update(env_pairs(e))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    env_vars = clean_app_env(
        HITL_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        HITL_JWT_SECRET=secrets.token_hex(32),
        HITL_AUDIT_CHECKPOINT_KEY=secrets.token_hex(32),
        PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
        PYTHONDONTWRITEBYTECODE=run_env.get("PYTHONDONTWRITEBYTECODE", "1"),
        HOME=str(tmp_path),
    )
    env_vars.pop("VIRTUAL_ENV", None)
    cmd = exec_form(runtime.all("CMD")[-1])
    assert cmd[:2] == ["hitl", "serve"]
    proc, base, log = start_app(venv / "bin" / "hitl", app_dir, env_vars)
    try:
        status, body = http_get(base + "/ready")
        assert status == 200, body
        assert http_get(base + "/health")[0] == 200
        # the wheel carries the reviewer console and GraphiQL's assets (package data, not only modules)
        status, page = http_get(base + "/console/")
        assert status == 200 and 'src="assets/app/main.js"' in page
        assert http_get(base + "/console/assets/vendor/graphiql/graphiql.min.js")[0] == 200
        # the image's HEALTHCHECK command succeeds against it
        health_cmd = exec_form(runtime.all("HEALTHCHECK")[0].split("CMD", 1)[1].strip())
        port = base.rsplit(":", 1)[1]
        hc = run(health_cmd, env={**env_vars, "HITL_PORT": port}, cwd=app_dir, timeout=30)
        assert hc.returncode == 0, hc.stderr
        bad = run(health_cmd, env={**env_vars, "HITL_PORT": str(free_port())}, cwd=app_dir, timeout=30)
        assert bad.returncode != 0, "HEALTHCHECK must fail when nothing answers"
    finally:
        stop_app(proc)
