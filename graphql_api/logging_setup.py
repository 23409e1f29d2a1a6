"""Structured logs (structlog): JSON lines with request id, subject and operation; never a token."""

import logging
import re
import sys

import structlog

# Anything that looks like a credential is cut out before a line is written.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.=]+"),
    re.compile(r"eyJ[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*"),
    re.compile(r"(?i)((?:api[_-]?key|password|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


def _redact_event(_logger: object, _name: str, event: dict) -> dict:
    event.pop("color_message", None)
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = redact(value)
    return event


def configure(level: str = "INFO", fmt: str = "json") -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Audit checkpoint lines (graphql_api.jobs) leave exactly as built: one JSON object that a log shipper keeps
    # and that can be pasted into verifyAuditChain(checkpoints:). Whatever HITL_LOG_LEVEL says, they are written.
    checkpoints = logging.getLogger("hitl.audit.checkpoint")
    checkpoint_handler = logging.StreamHandler(sys.stdout)
    checkpoint_handler.setFormatter(logging.Formatter("%(message)s"))
    checkpoints.handlers[:] = [checkpoint_handler]
    checkpoints.setLevel(logging.INFO)
    checkpoints.propagate = False
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)  # /ready reads the revision often
    # A line per webhook request otherwise (with the target's address); outcomes are in the delivery log and metrics.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
