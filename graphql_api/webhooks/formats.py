"""The bodies of API.md "Webhooks": CloudEvents 1.0 structured JSON, or a Slack incoming-webhook message.
Each is encoded once per event and format and shared by every endpoint of that format."""

import json
from datetime import datetime

from db.enums import WebhookFormat
from db.services.audit_log import seq_cursor
from db.services.policy import sla_status
from db.services.webhook_delivery import Event

SOURCE = "/hitl-patch-service"
TYPE_PREFIX = "ai.maximus.hitl.patch."
CONTENT_TYPES = {WebhookFormat.CLOUDEVENTS: "application/cloudevents+json", WebhookFormat.SLACK: "application/json"}


def event_id(event: Event) -> str:
    """The event's cursor: the same for every attempt and every endpoint, so receivers deduplicate on it."""
    return seq_cursor(event.seq)


def cloudevent(event: Event, now: datetime) -> dict:
    patch = event.patch
    return {
        "specversion": "1.0",
        "id": event_id(event),
        "source": SOURCE,
        "type": TYPE_PREFIX + event.kind.lower(),
        "time": event.at.isoformat(),
        "subject": patch.patch_id,
        "datacontenttype": "application/json",
        "data": {
            "seq": event.seq,
            "kind": event.kind,
            "actor": event.actor,
            "patch": {
                "id": str(patch.id), "patchId": patch.patch_id, "cveId": patch.cve_id, "packageName": patch.package_name,
                "currentVersion": patch.current_version, "targetVersion": patch.target_version, "priority": patch.priority,
                "status": patch.status, "slaStatus": sla_status(patch, now).value, "version": patch.version,
            },
        },
    }


def _slack_text(value: str | None) -> str:
    """Upstream text as plain text in Slack's mrkdwn: its three control characters escaped."""
    return (value or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(event: Event, now: datetime, console_url: str | None) -> dict:
    patch = event.patch
    what = event.kind.replace("_", " ").lower()
    name = _slack_text(patch.patch_id)
    link = f"<{console_url.rstrip('/')}/console/patches/{patch.id}|{name}>" if console_url else name
    change = f"{_slack_text(patch.package_name)} {_slack_text(patch.current_version)} → {_slack_text(patch.target_version)}"
    cve = f" ({_slack_text(patch.cve_id)})" if patch.cve_id else ""
    headline = f"[{patch.priority}] {name}: {what} by {_slack_text(event.actor)} — {change}{cve}"
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{patch.priority}* {link}: {what} by {_slack_text(event.actor)}\n{change}{cve}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"status {patch.status} · SLA {sla_status(patch, now).value} · event {event.seq}"}]},
        ],
    }


def encode(event: Event, fmt: WebhookFormat, now: datetime, console_url: str | None) -> bytes:
    body = cloudevent(event, now) if fmt == WebhookFormat.CLOUDEVENTS else slack_message(event, now, console_url)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
