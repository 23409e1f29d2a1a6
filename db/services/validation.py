"""Input checks shared by the services: every violation is BAD_USER_INPUT naming the field."""

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError
from packaging.version import InvalidVersion, Version

from db.enums import Severity, VersionBump
from db.services.errors import BadUserInput

# Control characters other than tab, newline and carriage return (NUL included); also DEL and C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"[\r\n\t]")
# Lone UTF-16 surrogates (JSON allows "\ud800"): not encodable as UTF-8, so no database can store or compare them.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
CVE_PATTERN = re.compile(r"^CVE-\d{4}-\d{4,19}$")
CWE_PATTERN = re.compile(r"^CWE-\d{1,6}$")

LIMITS = {
    "identifier": 200,
    "package": 214,
    "version": 100,
    "short_text": 200,
    "reason": 4_000,
    "comment": 10_000,
    "diff": 512 * 1024,
    "list_items": 500,
}
MAX_PAGE = 500
MAX_PATCH_SIZE_LINES = 10_000_000
MAX_EXECUTION_MS = 7 * 24 * 3600 * 1000
SCORE_TOLERANCE = 0.05


def text_field(value: str | None, *, field: str, max_length: int, required: bool = False, multiline: bool = False) -> str | None:
    """Reject control characters and over-long values; blank required values are an error."""
    if value is None:
        if required:
            raise BadUserInput(f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise BadUserInput(f"{field} must be a string", field=field)
    if len(value) > max_length:
        raise BadUserInput(f"{field} is longer than {max_length} characters", field=field)
    if _CONTROL.search(value) or (not multiline and _LINE_BREAK.search(value)):
        raise BadUserInput(f"{field} contains control characters", field=field)
    if _SURROGATE.search(value):
        raise BadUserInput(f"{field} is not valid Unicode text (lone surrogate)", field=field)
    if required and not value.strip():
        raise BadUserInput(f"{field} must not be blank", field=field)
    return value


def text_list(values: list[str] | None, *, field: str, max_length: int, pattern: re.Pattern | None = None) -> list[str]:
    values = list(values or [])
    if len(values) > LIMITS["list_items"]:
        raise BadUserInput(f"{field} has more than {LIMITS['list_items']} items", field=field)
    cleaned = []
    for value in values:
        text_field(value, field=field, max_length=max_length, required=True)
        value = value.strip()
        if pattern is not None and not pattern.match(value):
            raise BadUserInput(f"{field}: {value[:40]!r} is not well-formed", field=field)
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def int_range(value: int | None, *, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadUserInput(f"{field} must be an integer between {low} and {high}", field=field)
    return value


def page_size(first: int | None, *, field: str = "first", default: int = 50) -> int:
    return int_range(default if first is None else first, field=field, low=1, high=MAX_PAGE)


def cve_id(value: str | None) -> str | None:
    value = text_field(value, field="cveId", max_length=64)
    if value is None or not value.strip():
        return None
    value = value.strip().upper()
    if not CVE_PATTERN.match(value):
        raise BadUserInput("cveId must look like CVE-2024-12345", field="cveId")
    return value


def severity_for_score(score: float) -> Severity:
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW  # 0.0 ("none") is still a reported vulnerability: lowest priority


@dataclass(frozen=True)
class ScoredSeverity:
    severity: Severity
    score: float | None
    vector: str | None


def cvss_vector_score(vector: str) -> float:
    try:
        if vector.startswith("CVSS:4.0/"):
            return float(CVSS4(vector).base_score)
        if vector.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            return float(CVSS3(vector).scores()[0])
    except (CVSSError, ValueError, KeyError, IndexError) as exc:
        raise BadUserInput(f"cvssVector is not a valid CVSS vector: {exc}", field="cvssVector") from None
    raise BadUserInput("cvssVector must be a CVSS v3.0, v3.1 or v4.0 vector (CVSS:3.1/AV:N/...)", field="cvssVector")


def severity_and_score(*, severity: str | None, score: float | None, vector: str | None) -> ScoredSeverity:
    """Derive severity and score; the vector's computed score wins and a conflict is an error."""
    vector = text_field(vector, field="cvssVector", max_length=512)
    vector = vector.strip() if vector and vector.strip() else None
    if score is not None and not (0.0 <= score <= 10.0):
        raise BadUserInput("cvssScore must be between 0.0 and 10.0", field="cvssScore")
    if vector is not None:
        computed = cvss_vector_score(vector)
        if score is not None and abs(score - computed) > SCORE_TOLERANCE:
            raise BadUserInput(f"cvssScore {score} conflicts with the vector's score {computed}", field="cvssScore")
        score = computed
    if severity is not None:
        try:
            given = Severity(severity)
        except ValueError:
            raise BadUserInput(f"unknown severity {severity!r}", field="severity") from None
        if score is not None and given != severity_for_score(score):
            raise BadUserInput(
                f"severity {given.value} conflicts with CVSS score {score} ({severity_for_score(score).value})", field="severity"
            )
        return ScoredSeverity(given, score, vector)
    if score is None:
        raise BadUserInput("severity is required when neither cvssScore nor cvssVector is given", field="severity")
    return ScoredSeverity(severity_for_score(score), score, vector)


def version_bump(current: str, target: str) -> VersionBump:
    if current.strip() == target.strip():
        raise BadUserInput("targetVersion equals currentVersion", field="targetVersion")
    try:
        old, new = Version(current), Version(target)
    except InvalidVersion:
        return VersionBump.OTHER
    if new <= old:
        return VersionBump.OTHER  # a downgrade or a re-labelled release: nothing semantic to say
    if new.major != old.major:
        return VersionBump.MAJOR
    if new.minor != old.minor:
        return VersionBump.MINOR
    if new.micro != old.micro:
        return VersionBump.PATCH
    return VersionBump.OTHER


def aware(moment: datetime | None, *, field: str) -> datetime | None:
    """Timestamps from clients must carry an offset; they are compared in UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadUserInput(f"{field} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)", field=field)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise BadUserInput(f"{field} is out of range once converted to UTC", field=field) from None
