"""The one settings class. Nothing else reads the environment."""

from functools import cached_property
from typing import Annotated
from urllib.parse import quote

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from db.services.policy import Policy

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

    auto_approve_min_confidence: float = Field(default=0.95, ge=0.5, le=1.0)
    auto_approve_target_precision: float = Field(default=0.99, gt=0.0, le=1.0)
    auto_approve_min_labels: int = Field(default=200, ge=1)
    required_approvals_default: int = Field(default=1, ge=1, le=10)
    required_approvals_critical: int = Field(default=2, ge=1, le=10)
    escalate_affected_systems: int = Field(default=10, ge=1)
    sla_seconds_critical: int = Field(default=300, ge=0)
    sla_seconds_high: int = Field(default=600, ge=0)
    sla_seconds_medium: int = Field(default=900, ge=0)
    sla_seconds_low: int = Field(default=0, ge=0)
    sla_auto_escalate: bool = False
    sla_check_interval_seconds: float = Field(default=5.0, gt=0)

    graphql_introspection: bool = True
    graphiql: bool = True
    max_query_depth: int = Field(default=12, ge=1)
    max_query_cost: int = Field(default=50_000, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_batch_size: int = Field(default=10, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ws_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    subscriber_buffer: int = Field(default=1000, ge=10)
    queue_coalesce_seconds: float = Field(default=0.05, ge=0)
    ws_keep_alive_seconds: float = Field(default=15.0, gt=0)

    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")

    ml_nthread: int = Field(default=2, ge=1)

    _csv_lists = field_validator("cors_origins", "ws_allowed_origins", mode="before")(_split_csv)

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        if "*" in self.cors_origins:
            raise ValueError("HITL_CORS_ORIGINS may not contain '*': the API takes credentials")
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
        if self.jwks_url or self.jwks_file:
            return None
        if self.jwt_secret is None:
            return "HITL_JWT_SECRET is not set (or configure HITL_JWKS_URL / HITL_JWKS_FILE)"
        value = self.jwt_secret.get_secret_value()
        if value.strip() in PLACEHOLDER_SECRETS or "placeholder" in value.lower() or "change" in value.lower():
            return "HITL_JWT_SECRET holds a placeholder value"
        if len(value) < MIN_SECRET_LENGTH:
            return f"HITL_JWT_SECRET is shorter than {MIN_SECRET_LENGTH} characters"
        return None

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
        )
