"""GraphQL over HTTP: strawberry's router plus the `application/graphql-response+json` media type.

Content negotiation follows the GraphQL-over-HTTP spec ("watershed" rules), checked by the npm
`graphql-http` server audits in tests/http_audit:

- Clients whose Accept header prefers `application/graphql-response+json` get it; a request that failed
  before execution (parse, validation, variable coercion) then answers 400 without a `data` entry
  (500 if the failure was our own). Partial or null `data` stays 200.
- Clients asking for `application/json`, `*/*` or nothing keep the classic behaviour: 200 for every
  well-formed request, GraphQL errors in the body.
- Requests that are not well-formed (bad JSON, no query, non-object variables, wrong content type, ...)
  get strawberry's 4xx status, but with a GraphQL-shaped JSON error body (`errors[].extensions.code`,
  API.md) in the negotiated media type instead of strawberry's plain text. A mutation sent with GET is a
  405 with `Allow: POST`.
- Responses vary by Accept, and say so (`Vary: Accept`).

Hostile request documents (graphql_api.request_limits) are refused here, before GraphQL sees them: JSON nested
deeper than request_limits.MAX_JSON_DEPTH (measured before decoding), bodies that are not an object or an array
of objects, and variables that are too deep, too long or too many (BAD_USER_INPUT, 400); documents over
request_limits.MAX_QUERY_CHARS are QUERY_TOO_COMPLEX (400). Every GraphQL error leaves with `extensions.code`
(graphql_api.errors), including the parser's own, which strawberry's ParserCache raises outside the extension
that codes the others (its token and nesting limits are QUERY_TOO_COMPLEX, other syntax errors BAD_USER_INPUT).

A browser's GET answers GraphiQL with every asset from this service (graphql_api.http.console), not strawberry's
page, which loads React and GraphiQL from a CDN and never finishes loading offline.

This is the HTTP half of the /graphql router; graphql_api.live.websocket adds the WebSocket half and
graphql_api.app puts the two together.
"""

from __future__ import annotations

from cross_web import HTTPException
from fastapi import Request, Response
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from graphql_api import request_limits
from graphql_api.errors import INTERNAL, UNKNOWN_OPERATION, RequestRefused, classify, code_of, coded
from graphql_api.http.console import graphiql_page
from graphql_api.metrics import Metrics

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

# request.state key: one entry per processed operation, "ok" | "request_error" | "internal_error".
_OUTCOMES = "graphql_outcomes"


def _accept_ranges(accept: str) -> list[tuple[str, float]]:
    """The Accept header as (media range, q) pairs; unparsable q-values count as 0 (not acceptable)."""
    ranges = []
    for part in accept.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((media, q))
    return ranges


def _quality(ranges: list[tuple[str, float]], media_type: str) -> tuple[float, int]:
    """(q, specificity) of the most specific range matching `media_type` (RFC 9110 §12.5.1); (0, 0) if none."""
    main = media_type.split("/", 1)[0]
    best: tuple[int, float] | None = None
    for media, q in ranges:
        specificity = 2 if media == media_type else 1 if media == f"{main}/*" else 0 if media == "*/*" else -1
        if specificity >= 0 and (best is None or specificity > best[0]):
            best = (specificity, q)
    return (0.0, 0) if best is None else (best[1], best[0])


def preferred_media_type(accept: str | None) -> str:
    """The media type to answer with.

    No Accept header, wildcards only, or nothing we can serve: `application/json` (the legacy default).
    Otherwise the higher q-value wins; at equal q an explicitly named type beats one only matched by a
    wildcard, and an explicit tie goes to `application/graphql-response+json`.
    """
    if not accept or not accept.strip():
        return JSON
    ranges = _accept_ranges(accept)
    response_q, response_specificity = _quality(ranges, GRAPHQL_RESPONSE)
    json_q, json_specificity = _quality(ranges, JSON)
    if response_q <= 0 and json_q <= 0:
        return JSON
    if response_q != json_q:
        return GRAPHQL_RESPONSE if response_q > json_q else JSON
    return GRAPHQL_RESPONSE if response_specificity == 2 and response_specificity >= json_specificity else JSON


def _failed_before_execution(result: ExecutionResult) -> bool:
    errors: list[GraphQLError] = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def _outcome(result: ExecutionResult) -> str:
    if not _failed_before_execution(result):
        return "ok"
    codes = {(error.extensions or {}).get("code") for error in result.errors or []}
    return "internal_error" if INTERNAL in codes else "request_error"


def _add_vary_accept(response: Response) -> None:
    vary = response.headers.get("vary")
    if not vary:
        response.headers["vary"] = "Accept"
    elif "accept" not in {item.strip().lower() for item in vary.split(",")}:
        response.headers["vary"] = f"{vary}, Accept"


def check_request(data: GraphQLRequestData) -> None:
    """Refuse one operation of a request before execution (400), with the code API.md gives the reason."""
    if data.operation_name is not None and not isinstance(data.operation_name, str):
        raise HTTPException(400, "The GraphQL operation's `operationName` must be a string or null, if provided.")
    request_limits.check_operation(data.query, data.variables, data.extensions)


class HttpGraphQLRouter(GraphQLRouter):
    metrics: Metrics | None = None  # set by graphql_api.app: counts the errors no operation hook saw

    def _count(self, errors: list) -> None:
        """Errors sent before (or without) an operation: its type is unknown."""
        if errors and self.metrics is not None:
            self.metrics.record_graphql_errors(errors, UNKNOWN_OPERATION)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its assets from this service (strawberry's own page loads them from a CDN)."""
        return graphiql_page(request)

    def decode_json(self, data: str | bytes) -> object:
        """Also used for WebSocket messages: too deep is malformed (400 here, 4400 on a WebSocket)."""
        return request_limits.decode_json(data)

    def parse_json(self, data: str | bytes) -> object:
        document = super().parse_json(data)
        if not isinstance(document, dict) and not (isinstance(document, list) and all(isinstance(item, dict) for item in document)):
            raise HTTPException(400, "The request body must be a JSON object, or an array of objects for a batch.")
        return document

    async def parse_http_body(self, request):  # noqa: ANN001, ANN201
        parsed = await super().parse_http_body(request)
        for data in parsed if isinstance(parsed, list) else [parsed]:
            check_request(data)
        return parsed

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Parse errors raised by strawberry's ParserCache escape the extension that codes (and counts) the others.
        if result.errors:
            escaped = [code_of(error) is None for error in result.errors]
            result.errors = [coded(error) for error in result.errors]
            self._count([error for error, new in zip(result.errors, escaped, strict=True) if new])
        response = await super().process_result(request, result)
        outcome = _outcome(result)
        if outcome != "ok":
            response.pop("data", None)  # no execution happened: the spec says omit `data`
        if request.scope["type"] == "http":
            outcomes = getattr(request.state, _OUTCOMES, None)
            if outcomes is None:
                outcomes = []
                setattr(request.state, _OUTCOMES, outcomes)
            outcomes.append(outcome)
        return response

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):  # noqa: ANN001, ANN201, PLR0913, PLR0917
        try:
            return await super().execute_single(request, request_adapter, sub_response, context, root_value, request_data)
        except HTTPException as exc:
            cause = exc.__cause__
            if (
                request_adapter.method == "GET"
                and isinstance(cause, InvalidOperationTypeError)
                and cause.operation_type == OperationType.MUTATION
            ):
                # GraphQL-over-HTTP: a mutation over GET is refused with 405 (GET is a safe method).
                raise HTTPException(405, exc.reason) from cause
            raise

    async def run(self, request, context=UNSET, root_value=UNSET):  # noqa: ANN001, ANN201
        if request.scope["type"] != "http":
            return await super().run(request, context=context, root_value=root_value)
        media_type = preferred_media_type(request.headers.get("accept"))
        try:
            response = await super().run(request, context=context, root_value=root_value)
        except (HTTPException, RequestRefused) as exc:
            return self._request_error(exc, media_type)
        if not isinstance(response, Response):
            return response
        _add_vary_accept(response)  # GraphiQL vs. JSON, and the JSON media type, both depend on Accept
        if response.media_type != JSON:
            return response  # GraphiQL (HTML) and streamed responses are otherwise left alone
        if media_type == GRAPHQL_RESPONSE:
            outcomes = getattr(request.state, _OUTCOMES, [])
            batch = response.body.lstrip()[:1] == b"["
            if response.status_code == 200 and not batch and len(outcomes) == 1 and outcomes[0] != "ok":
                response.status_code = 500 if outcomes[0] == "internal_error" else 400
            response.headers["content-type"] = GRAPHQL_RESPONSE
        return response

    def _request_error(self, exc: HTTPException | RequestRefused, media_type: str) -> Response:
        """A request that is not well-formed GraphQL-over-HTTP: strawberry's status, a GraphQL error body."""
        refused = classify(exc)
        self._count([refused.formatted()])
        response = Response(self.encode_json({"errors": [refused.formatted()]}), status_code=refused.http_status, media_type=media_type)
        if refused.http_status == 405:
            response.headers["allow"] = "POST"
        _add_vary_accept(response)
        return response
