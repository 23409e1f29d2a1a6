"""GraphQL over HTTP: strawberry's router plus the `application/graphql-response+json` media type.

Clients that accept `application/graphql-response+json` get it, with 4xx when the request failed before
execution (parse, validation, variables); clients asking for `application/json` keep the classic
200 behaviour (GraphQL-over-HTTP spec, "watershed" rules).
"""

import json

from fastapi import Request, Response
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def preferred_media_type(accept: str) -> str:
    """The media type to answer with, by the Accept header's q-values (ties go to graphql-response+json)."""
    best, best_q = None, -1.0
    for part in accept.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        media = pieces[0].lower()
        q = 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in (GRAPHQL_RESPONSE, JSON, "application/*", "*/*") and q > 0:
            candidate = JSON if media == JSON else GRAPHQL_RESPONSE if media == GRAPHQL_RESPONSE else None
            if candidate and (q > best_q or (q == best_q and candidate == GRAPHQL_RESPONSE)):
                best, best_q = candidate, q
            elif candidate is None and best is None:
                best, best_q = JSON, q
    return best or JSON


def _failed_before_execution(result: ExecutionResult) -> bool:
    errors: list[GraphQLError] = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


class HttpGraphQLRouter(GraphQLRouter):
    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if _failed_before_execution(result):
            response.pop("data", None)  # no execution happened: the spec says omit `data`
        return response

    async def run(self, request, context=UNSET, root_value=UNSET):  # noqa: ANN001, ANN201
        response = await super().run(request, context=context, root_value=root_value)
        if not isinstance(response, Response) or request.scope["type"] != "http":
            return response
        if response.media_type != JSON or preferred_media_type(request.headers.get("accept", JSON)) != GRAPHQL_RESPONSE:
            return response
        body = json.loads(response.body)
        status = response.status_code
        if isinstance(body, dict) and "data" not in body and status == 200:
            status = 400
        headers = {key: value for key, value in response.headers.items() if key.lower() not in {"content-length", "content-type"}}
        return Response(response.body, status_code=status, media_type=GRAPHQL_RESPONSE, headers=headers)
