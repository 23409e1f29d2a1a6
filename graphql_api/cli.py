"""`hitl` command line: serve, db upgrade / grant-app-role, audit verify / checkpoints, token, demo, ml train, export-schema."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from graphql_api.config import Settings

app = typer.Typer(help="HITL Patch Service", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database commands", no_args_is_help=True)
ml_app = typer.Typer(help="Model commands", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log commands", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ml_app, name="ml")
app.add_typer(audit_app, name="audit")


def _settings(**overrides: object) -> Settings:
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (HITL_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (HITL_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (HITL_WORKERS)")] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Embedded database, generated secret, demo data, printed tokens")] = False,
) -> None:
    """Run the API server (uvicorn)."""
    from graphql_api.server import run

    run(_settings(host=host, port=port, workers=workers, dev=dev or None))


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    grant_app_role: Annotated[
        bool, typer.Option("--grant-app-role", help="Then create (if missing) and grant the role HITL_APP_ROLE (password HITL_APP_ROLE_PASSWORD)")
    ] = False,
) -> None:
    """Apply the database migrations (as the tables' owner)."""
    from db.migrate import upgrade

    settings = _settings()
    if grant_app_role and not settings.app_role:
        raise typer.BadParameter("HITL_APP_ROLE is not set", param_hint="--grant-app-role")
    upgrade(settings.effective_database_url, revision)
    typer.echo(f"database at {revision}")
    if grant_app_role:
        _grant(settings, settings.app_role, create=True)


@db_app.command("grant-app-role")
def db_grant_app_role(
    role: Annotated[str | None, typer.Argument(help="The PostgreSQL role `hitl serve` connects as (default: HITL_APP_ROLE)")] = None,
    create: Annotated[bool, typer.Option("--create", help="Create it as a login role with HITL_APP_ROLE_PASSWORD when missing")] = False,
) -> None:
    """Give ROLE exactly the privileges the service needs (run as the tables' owner, after upgrade).

    ROLE may then read and write the queue but never change or delete audit entries, nor disable the
    triggers that guard them.
    """
    settings = _settings()
    role = role or settings.app_role
    if not role:
        raise typer.BadParameter("give ROLE or set HITL_APP_ROLE", param_hint="ROLE")
    _grant(settings, role, create=create)


def _grant(settings: Settings, role: str, *, create: bool) -> None:
    from db.roles import RoleProblem, ensure_login_role, grant_application_role

    password = settings.app_role_password.get_secret_value() if settings.app_role_password else None
    try:
        if create and asyncio.run(ensure_login_role(settings.effective_database_url, role, password)):
            typer.echo(f"created login role {role}")
        privileges = asyncio.run(grant_application_role(settings.effective_database_url, role))
    except RoleProblem as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"granted to {role}:")
    for table, allowed in privileges.items():
        typer.echo(f"{table}: {allowed}")


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[
        Path | None, typer.Option(help="File of signed checkpoints, one JSON object per line (the service's audit_checkpoint log lines)")
    ] = None,
) -> None:
    """Recompute the audit log's hash chain and check it still reaches every checkpoint (key: HITL_AUDIT_CHECKPOINT_KEY).

    Prints the report as JSON. Exit 0: valid; 1: broken or truncated; 2: a checkpoint that is malformed or whose
    signature does not verify.
    """
    from graphql_api.audit_cli import verify

    raise typer.Exit(verify(_settings(), checkpoints))


@audit_app.command("checkpoints")
def audit_checkpoints(limit: Annotated[int, typer.Option(min=1, max=100_000, help="How many of the newest")] = 100) -> None:
    """Print the newest stored checkpoints, oldest first, one JSON line each (the same lines the service logs)."""
    from graphql_api.audit_cli import export

    typer.echo(export(_settings(), limit), nl=False)


@app.command()
def token(
    sub: Annotated[str, typer.Option("--sub", help="Subject (who)")],
    role: Annotated[list[str], typer.Option("--role", help="Role: viewer, reviewer, lead, admin, service (repeatable)")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 3600, 30m, 1h, 7d")] = "1h",
) -> None:
    """Print a token signed with the configured HITL_JWT_SECRET."""
    from graphql_api.auth import mint_token, parse_roles, parse_ttl

    settings = _settings()
    if settings.jwt_secret is None:
        raise typer.BadParameter("HITL_JWT_SECRET is not set", param_hint="HITL_JWT_SECRET")
    unknown = [value for value in role if not parse_roles([value])]
    if unknown:
        raise typer.BadParameter(f"unknown role(s): {', '.join(unknown)}", param_hint="--role")
    try:
        seconds = parse_ttl(ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ttl") from None
    typer.echo(
        mint_token(
            secret=settings.jwt_secret.get_secret_value(),
            subject=sub,
            roles=role,
            ttl_seconds=seconds,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    )


@app.command()
def demo(
    count: Annotated[int, typer.Option(help="Number of synthetic patches")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
) -> None:
    """Load SYNTHETIC demo data (clearly marked) into the configured database."""
    from ml.demo import load_demo

    summary = asyncio.run(load_demo(_settings().training_job(), count=count, seed=seed))
    typer.echo(summary)


@ml_app.command("train")
def ml_train() -> None:
    """Train a model on the decision history, store it and activate it."""
    from ml.service import train_and_activate_cli

    typer.echo(asyncio.run(train_and_activate_cli(_settings().training_job())))


@app.command("export-schema")
def export_schema(output: Annotated[Path | None, typer.Option(help="File to write (default: stdout)")] = None) -> None:
    """Print the GraphQL SDL served by this build."""
    from graphql_api.schema import schema

    sdl = schema.as_str() + "\n"
    if output is None:
        typer.echo(sdl, nl=False)
    else:
        output.write_text(sdl, encoding="utf-8")


if __name__ == "__main__":
    app()
