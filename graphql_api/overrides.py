"""Every place this service overrides or reads a library's internals, and the version each was checked against.

Each override lives in graphql_api/http/, graphql_api/live/ or graphql_api/schema/input_builders.py and says in its own docstring why it exists
(memory per open WebSocket, CPU per request, coded errors). An upgrade of one of these libraries is deliberate:
tests/test_overrides.py fails while an installed version differs from the one below. To upgrade, read the
library's changes to each method or attribute named here, run the suite and the benchmarks
(`python -m tests.benchmarks --quick`), then update the version here and the bounds in pyproject.toml.

| where | library | what it replaces or reads |
|---|---|---|
| http/entry.py `HttpEntry`, `WebSocketEntry` | strawberry-graphql | strawberry's FastAPI route: sets `context.request`, `context.response` and `router.temporal_response` as its dependency does, then calls `GraphQLRouter.run` |
| http/entry.py `ServiceApp` | fastapi, starlette | `FastAPI.__call__`: a front ASGI app before FastAPI's own entry (sets `scope["app"]` as starlette does) |
| http/graphql_http.py `HttpGraphQLRouter` | strawberry-graphql, cross-web | `GraphQLRouter.render_graphql_ide` (GraphiQL from graphql_api.http.console), `decode_json`, `parse_json`, `parse_http_body`, `process_result`, `execute_single`, `run`; cross-web's `HTTPException` (`status_code`, `reason`) |
| live/websocket.py handlers | strawberry-graphql | `BaseGraphQLTransportWSHandler.on_request_accepted` (`connection_init_timeout_task`), `handle_connection_init` (its `websocket.close(4403)` swapped for the refusal's code), `run_operation`, `handle_subscribe`; `BaseGraphQLWSHandler.handle_start`; `ASGIWebSocketAdapter.iter_json`; the router's `encode_json` and `on_ws_connect` |
| live/shared_execution.py `SharedEventExecutor` | strawberry-graphql, graphql-core | `StrawberryGraphQLCoreExecutionContext.build_per_event_executor` and `execute_operation`; graphql-core's per-executor memo `_relevant_sub_fields` |
| live/delivery.py `DirectWriter` | strawberry-graphql | reads an operation's `completed`, `id`, `handler.operations` and `handler.websocket.ws` |
| schema/input_builders.py | strawberry-graphql | sets `StrawberryObjectDefinition.from_input` (documented hook) on the input types found in `Schema.schema_converter.type_map`; reads `InputContext`, `StrawberryOptional`/`StrawberryMaybe`/`StrawberryList`, `is_scalar` |
| live/ws_protocol.py `LeanWebSocketProtocol` | uvicorn, websockets | `WebSocketsSansIOProtocol.__init__` (`queue`, `writable`), `handle_connect` (scope), `send` (drops `request`/`response` after the accept); `write_text` uses `conn.send_text`, `conn.data_to_send`, `handshake_complete`, `close_sent`, `initial_response`; websockets' `Request.headers` |
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckedLibrary:
    distribution: str
    version: str  # the installed version the overrides were read against
    overridden_in: tuple[str, ...]


CHECKED = (
    CheckedLibrary("strawberry-graphql", "0.341.2", ("http/entry.py", "http/graphql_http.py", "schema/input_builders.py", "live/websocket.py", "live/shared_execution.py", "live/delivery.py")),
    CheckedLibrary("graphql-core", "3.3.2", ("live/shared_execution.py",)),
    CheckedLibrary("cross-web", "0.9.0", ("http/graphql_http.py",)),
    CheckedLibrary("fastapi", "0.165.0", ("http/entry.py",)),
    CheckedLibrary("starlette", "1.10.0", ("http/entry.py",)),
    CheckedLibrary("uvicorn", "0.54.0", ("live/ws_protocol.py",)),
    CheckedLibrary("websockets", "17.4", ("live/ws_protocol.py",)),
)
