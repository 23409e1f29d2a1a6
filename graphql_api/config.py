"""The one settings class. Nothing else reads the environment."""

from functools import cached_property
from typing import Annotated
from urllib.parse import quote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from db.enums import Role
from db.services.policy import Policy
from ml.training_job import TrainingJob

# Values that look like a secret but are the ones people paste from examples.
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder", "replace-me", "REPLACE_ME", "dev", "test"}
MIN_SECRET_LENGTH = 32


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HITL_", extra="ignore", populate_by_name=True)

    database_url: str | None = None
    postgres_host: str | None = Field(default=None, validation_alias=AliasChoices("POSTGRES_HOST", "HITL_POSTGRES_HOST"))
    postgres_port: int = Field(default=5432, validation_alias=AliasChoices("POSTGRES_PORT", "HITL_POSTGRES_PORT"))
    postgres_db: str = Field(default="hitl", validation_alias=AliasChoices("POSTGRES_DB", "HITL_POSTGRES_DB"))
    postgres_user: str = Field(default="postgres", validation_alias=AliasChoices("POSTGRES_USER", "HITL_POSTGRES_USER"))
    postgres_password: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("POSTGRES_PASSWORD", "HITL_POSTGRES_PASSWORD")
    )
    db_pool_min_size: int = Field(default=2, ge=0, validation_alias=AliasChoices("DB_POOL_MIN_SIZE", "HITL_DB_POOL_MIN_SIZE"))
    db_pool_max_size: int = Field(default=10, ge=1, validation_alias=AliasChoices("DB_POOL_MAX_SIZE", "HITL_DB_POOL_MAX_SIZE"))
    # How long a request waits for a database connection (a free pooled one, or opening a new one) before
    # it fails with SERVICE_UNAVAILABLE; and the per-statement limit on PostgreSQL (0 = none).
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, validation_alias=AliasChoices("DB_POOL_TIMEOUT_SECONDS", "HITL_DB_POOL_TIMEOUT_SECONDS")
    )
    db_statement_timeout_seconds: float = Field(
        default=30.0, ge=0, le=3600, validation_alias=AliasChoices("DB_STATEMENT_TIMEOUT_SECONDS", "HITL_DB_STATEMENT_TIMEOUT_SECONDS")
    )

    host: str = "0.0.0.0"
    port: int = Field(default=8027, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    dev: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)

    jwt_secret: SecretStr | None = None
    jwks_url: str | None = None
    jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    internal_api_key: SecretStr | None = None
    # Single sign-on (API.md, "Single sign-on"): the IdP's issuer (its keys come from OIDC discovery), the console's
    # public client, and where the roles are in its access tokens: a claim (a dotted path reaches nested ones)
    # whose values map to roles through `idp-value=ROLE` pairs (without a map the values are role names).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_scopes: str = "openid profile email"
    roles_claim: str = Field(default="roles", min_length=1, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
    role_map: Annotated[dict[str, Role], NoDecode] = Field(default_factory=dict)

    auto_approve_min_confidence: float = Field(default=0.95, ge=0.5, le=1.0)
    auto_approve_target_precision: float = Field(default=0.99, gt=0.0, le=1.0)
    auto_approve_min_labels: int = Field(default=200, ge=1)
    required_approvals_default: int = Field(default=1, ge=1, le=10)
    required_approvals_critical: int = Field(default=2, ge=1, le=10)
    escalate_affected_systems: int = Field(default=10, ge=1)
    # The auto-approval guard (db.services.guard) and the feature-drift check (ml.drift).
    guard_window: int = Field(default=200, ge=1, le=100_000)
    guard_max_failures: int = Field(default=3, ge=1)
    guard_min_outcomes: int = Field(default=10, ge=1)
    drift_window: int = Field(default=500, ge=50, le=100_000)
    drift_psi_threshold: float = Field(default=0.25, gt=0)
    drift_pause: bool = False
    drift_check_seconds: float = Field(default=60.0, ge=0)
    sla_seconds_critical: int = Field(default=300, ge=0)
    sla_seconds_high: int = Field(default=600, ge=0)
    sla_seconds_medium: int = Field(default=900, ge=0)
    sla_seconds_low: int = Field(default=0, ge=0)
    sla_auto_escalate: bool = False
    sla_check_interval_seconds: float = Field(default=5.0, gt=0)

    graphql_introspection: bool = True
    graphiql: bool = True
    # The reviewer console at /console (graphql_api/console); false answers 404 there and at /.
    console: bool = True
    max_query_depth: int = Field(default=12, ge=1)
    max_query_cost: int = Field(default=50_000, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_batch_size: int = Field(default=10, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ws_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The database-derived gauges of /metrics are read in the background every so often, each read given up
    # (hitl_db_up 0) after the timeout; a scrape never waits on the database (graphql_api.metrics).
    metrics_refresh_seconds: float = Field(default=5.0, gt=0)
    metrics_refresh_timeout_seconds: float = Field(default=5.0, gt=0)
    subscriber_buffer: int = Field(default=1000, ge=10)
    # Live pages (pendingQueue, pendingGroups) gather the changes of a window: the base one after a quiet moment,
    # growing up to the maximum while changes keep streaming in (graphql_api.live.hub.CoalescingWindow).
    queue_coalesce_seconds: float = Field(default=0.05, ge=0)
    queue_coalesce_max_seconds: float = Field(default=0.15, ge=0)
    ws_keep_alive_seconds: float = Field(default=15.0, gt=0)

    # Signed audit checkpoints (db.services.audit_checkpoints): one per interval (0 = none), as a log line and a
    # row. The key is required outside dev mode while they are on; `hitl serve --dev` generates one per run.
    audit_checkpoint_seconds: float = Field(default=60.0, ge=0)
    audit_checkpoint_key: SecretStr | None = None
    # The restricted login role `hitl serve` connects as, for `hitl db upgrade --grant-app-role` run by the
    # tables' owner (the Kubernetes migration Job): created with this password when missing (db.roles).
    app_role: str | None = None
    app_role_password: SecretStr | None = None

    # Webhooks (API.md "Webhooks", graphql_api.webhooks). Targets outside the public internet only when listed
    # (host names, addresses or CIDRs); `webhooks=false` keeps this process from sending (others still do).
    webhooks: bool = True
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    webhook_max_retry_seconds: float = Field(default=86400.0, gt=0)
    webhook_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=600.0, gt=0)
    webhook_lease_seconds: float = Field(default=15.0, ge=1)
    webhook_poll_seconds: float = Field(default=5.0, gt=0)
    webhook_max_response_bytes: int = Field(default=65536, ge=1024)
    # The service's public origin (e.g. https://hitl.example.com): Slack messages link to the console there.
    public_url: str | None = None

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")

    ml_nthread: int = Field(default=2, ge=1)

    _csv_lists = field_validator("cors_origins", "ws_allowed_origins", "webhook_allowed_hosts", mode="before")(_split_csv)

    @field_validator("role_map", mode="before")
    @classmethod
    def _parse_role_map(cls, value: object) -> object:
        """`sec-reviewers=REVIEWER,sec-leads=lead` → {"sec-reviewers": REVIEWER, "sec-leads": LEAD}."""
        if not isinstance(value, str):
            return value
        mapping = {}
        for item in _split_csv(value):
            idp_value, equals, role = item.rpartition("=")
            known = {member.value for member in Role}
            if not equals or not idp_value.strip() or role.strip().upper() not in known:
                raise ValueError(f"HITL_ROLE_MAP entry {item!r} is not idp-value=ROLE with ROLE one of {', '.join(sorted(known))}")
            mapping[idp_value.strip()] = role.strip().upper()
        return mapping

    @field_validator("oidc_issuer")
    @classmethod
    def _check_issuer(cls, value: str | None) -> str | None:
        """https, or http on the loopback interface only (a local IdP in development and tests)."""
        if not value:
            return None
        url = urlsplit(value)
        loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
        if not url.hostname or url.query or url.fragment or not (url.scheme == "https" or (url.scheme == "http" and loopback)):
            raise ValueError("HITL_OIDC_ISSUER must be an https URL without query or fragment (http only on 127.0.0.1/localhost)")
        return value

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        if "*" in self.cors_origins:
            raise ValueError("HITL_CORS_ORIGINS may not contain '*': the API takes credentials")
        if self.oidc_issuer and (self.jwks_url or self.jwks_file):
            raise ValueError("HITL_OIDC_ISSUER takes the keys from OIDC discovery: leave HITL_JWKS_URL and HITL_JWKS_FILE unset")
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("HITL_OIDC_ISSUER needs HITL_OIDC_CLIENT_ID (the console's public client at the IdP)")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.postgres_host:
            password = quote(self.postgres_password.get_secret_value(), safe="")
            auth = quote(self.postgres_user, safe="") + (f":{password}" if password else "")
            return f"postgresql+asyncpg://{auth}@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
        return "sqlite+aiosqlite:///./hitl.db"

    def secret_problem(self) -> str | None:
        """Why the configured token secret is unusable outside dev mode, or None when it is fine."""
        if self.jwks_url or self.jwks_file or self.oidc_issuer:
            return None
        if self.jwt_secret is None:
            return "HITL_JWT_SECRET is not set (or configure HITL_OIDC_ISSUER, HITL_JWKS_URL or HITL_JWKS_FILE)"
        value = self.jwt_secret.get_secret_value()
        if value.strip() in PLACEHOLDER_SECRETS or "placeholder" in value.lower() or "change" in value.lower():
            return "HITL_JWT_SECRET holds a placeholder value"
        if len(value) < MIN_SECRET_LENGTH:
            return f"HITL_JWT_SECRET is shorter than {MIN_SECRET_LENGTH} characters"
        return None

    def audit_checkpoint_key_problem(self) -> str | None:
        """Why checkpoints cannot be signed outside dev mode, or None (also when they are off)."""
        if self.audit_checkpoint_seconds == 0:
            return None
        if self.audit_checkpoint_key is None:
            return "HITL_AUDIT_CHECKPOINT_KEY is not set (or set HITL_AUDIT_CHECKPOINT_SECONDS=0 to write no audit checkpoints)"
        value = self.audit_checkpoint_key.get_secret_value()
        if value.strip() in PLACEHOLDER_SECRETS or "placeholder" in value.lower() or "change" in value.lower():
            return "HITL_AUDIT_CHECKPOINT_KEY holds a placeholder value"
        if len(value) < MIN_SECRET_LENGTH:
            return f"HITL_AUDIT_CHECKPOINT_KEY is shorter than {MIN_SECRET_LENGTH} characters"
        return None

    @property
    def audit_checkpoint_key_bytes(self) -> bytes | None:
        return self.audit_checkpoint_key.get_secret_value().encode() if self.audit_checkpoint_key is not None else None

    def startup_problem(self) -> str | None:
        """The first reason not to serve outside dev mode: a token secret or a checkpoint key that is unusable."""
        return self.secret_problem() or self.audit_checkpoint_key_problem()

    def policy(self) -> Policy:
        return Policy(
            required_approvals_default=self.required_approvals_default,
            required_approvals_critical=self.required_approvals_critical,
            sla_seconds={
                "CRITICAL": self.sla_seconds_critical,
                "HIGH": self.sla_seconds_high,
                "MEDIUM": self.sla_seconds_medium,
                "LOW": self.sla_seconds_low,
            },
            sla_auto_escalate=self.sla_auto_escalate,
            auto_approve_min_confidence=self.auto_approve_min_confidence,
            auto_approve_target_precision=self.auto_approve_target_precision,
            auto_approve_min_labels=self.auto_approve_min_labels,
            escalate_affected_systems=self.escalate_affected_systems,
            guard_window=self.guard_window,
            guard_max_failures=self.guard_max_failures,
            guard_min_outcomes=self.guard_min_outcomes,
        )

    def training_job(self) -> TrainingJob:
        """What the command-line model jobs (ml.demo.load_demo, ml.service.train_and_activate_cli) take."""
        return TrainingJob(database_url=self.effective_database_url, policy=self.policy(), nthread=self.ml_nthread)
