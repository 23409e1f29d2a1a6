"""The seed's REST aliases, authenticated, over the same services as GraphQL. Errors have the API's codes and
the HTTP status graphql_api.errors gives them (a database that cannot serve: 503 with Retry-After)."""

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from enum import Enum

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from db.services import analytics, queue
from db.services.errors import BadUserInput
from db.services.queue import MAX_OFFSET
from db.services.validation import MAX_PAGE, int_range
from db.types import utcnow
from graphql_api.errors import RETRY_AFTER_SECONDS, UNAVAILABLE, UNAUTHENTICATED, classify
from graphql_api.paths import REST_PREFIX
from graphql_api.schema.types.patch import Patch
from graphql_api.services import Services


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value):
        return {_camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "row"}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """A query-string integer, checked after authentication and reported under its REST name (400, not 422)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadUserInput(f"{name} must be an integer between {low} and {high}", field=name) from None
    return int_range(value, field=name, low=low, high=high)


def patch_json(row, now) -> dict:  # noqa: ANN001
    return jsonable_encoder(_plain(Patch.from_model(row, now)))


def _answering_errors(endpoint: Callable[[Request], Awaitable[JSONResponse]]) -> Callable[[Request], Awaitable[JSONResponse]]:
    @functools.wraps(endpoint)
    async def answered(request: Request) -> JSONResponse:
        try:
            return await endpoint(request)
        except Exception as exc:  # noqa: BLE001 - every failure gets the API's error shape
            refused = classify(exc, request_id=request.scope.get("state", {}).get("request_id"), where=request.url.path)
        headers = {}
        if refused.code == UNAUTHENTICATED:
            headers["WWW-Authenticate"] = "Bearer"  # RFC 9110: a 401 names the scheme
        elif refused.code == UNAVAILABLE:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return JSONResponse(refused.rest_body(), status_code=refused.http_status, headers=headers)

    return answered


def router(services: Services) -> APIRouter:
    api = APIRouter(prefix=REST_PREFIX)

    def authorize(request: Request) -> None:
        credential = services.authenticator.from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
        credential.actor.require("read", "reading the queue")

    @api.get("/patches/pending")
    @_answering_errors
    async def pending(request: Request) -> JSONResponse:
        """?limit=1..500 (50) &offset=0.. (0) &priority=HIGH&priority=CRITICAL"""
        authorize(request)
        limit = _int_param(request, "limit", default=50, low=1, high=MAX_PAGE)
        offset = _int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
        priority = [value.strip().upper() for value in request.query_params.getlist("priority") if value.strip()]
        now = utcnow()
        flt = queue.PendingFilter(priority=priority)
        async with services.db.read() as session:
            page = await queue.pending_page(session=session, first=limit, offset=offset, flt=flt, now=now)
        return JSONResponse({"total": page.total_count, "limit": limit, "offset": offset, "items": [patch_json(row, now) for row in page.items]})

    @api.get("/analytics/summary")
    @_answering_errors
    async def summary(request: Request) -> JSONResponse:
        authorize(request)
        async with services.db.read() as session:
            result = await analytics.summary(session=session, now=utcnow())
        return JSONResponse({_camel(key): value for key, value in dataclasses.asdict(result).items()})

    return api
