"""The seed's REST aliases, authenticated, over the same services as GraphQL."""

import dataclasses
from enum import Enum

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from db.services import analytics, queue
from db.services.errors import DomainError
from db.types import utcnow
from graphql_api.types.patch import Patch

STATUS_FOR_CODE = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "BAD_USER_INPUT": 400, "CONFLICT": 409}


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


def patch_json(row, now) -> dict:  # noqa: ANN001
    return jsonable_encoder(_plain(Patch.from_model(row, now)))


def router(services) -> APIRouter:  # noqa: ANN001 - graphql_api.context.Services
    api = APIRouter(prefix="/hitl")

    def authorize(request: Request) -> None:
        credential = services.authenticator.from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
        credential.actor.require("read", "reading the queue")

    def error(exc: DomainError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message, **exc.extensions}}, status_code=STATUS_FOR_CODE.get(exc.code, 500))

    @api.get("/patches/pending")
    async def pending(
        request: Request,
        limit: int = Query(50),
        offset: int = Query(0),
        priority: list[str] = Query(default_factory=list),
    ) -> JSONResponse:
        try:
            authorize(request)
            now = utcnow()
            flt = queue.PendingFilter(priority=[p.upper() for p in priority])
            async with services.db.read() as session:
                page = await queue.pending_page(session=session, first=limit, offset=offset, flt=flt, now=now)
        except DomainError as exc:
            return error(exc)
        return JSONResponse({"total": page.total_count, "limit": limit, "offset": offset, "items": [patch_json(row, now) for row in page.items]})

    @api.get("/analytics/summary")
    async def summary(request: Request) -> JSONResponse:
        try:
            authorize(request)
            async with services.db.read() as session:
                result = await analytics.summary(session=session, now=utcnow())
        except DomainError as exc:
            return error(exc)
        return JSONResponse({_camel(key): value for key, value in dataclasses.asdict(result).items()})

    return api
