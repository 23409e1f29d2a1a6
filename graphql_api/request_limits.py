"""Bounds on request JSON, GraphQL documents and variables that HTTP and WebSocket share. Checked before
GraphQL sees a request; a request out of bounds is refused with errors.RequestRefused."""

import json
from itertools import accumulate

from graphql_api.errors import QUERY_TOO_COMPLEX, RequestRefused

# --- request JSON and variables -------------------------------------------------------------------------
# The body limit bounds a request's bytes, not what they decode to. Nested deeply enough, JSON made the
# decoder recurse to Python's recursion limit: a plain 500 or a reset connection, and, in `hitl serve`, a
# garbage collection that struck on that stack ran its timing callback (graphql_api.server) past the limit
# (RecursionError printed to the log). Nesting is therefore measured before decoding, without recursion.
# A 2 MiB body holds 100k list items, each of which became an SQL bind parameter (on PostgreSQL asyncpg
# refuses more than 32,767; on SQLite the request took 1 s and +77 MiB of RSS). No valid request comes near
# these bounds (API.md and db.services.validation: lists <= 500 items, texts <= 512 KiB).
# The lexer reads a document character by character: a 2 MiB string literal took ~0.7 s of the event loop,
# and strawberry's parser cache then kept the text and its tree (~3 MB each). Large values go in variables.
MAX_QUERY_CHARS = 100_000
MAX_JSON_DEPTH = 64  # a batch, an operation and its variables: at most 2 + MAX_VARIABLES_DEPTH
MAX_VARIABLES_DEPTH = 20  # variables object = 1; the deepest real input (a SHAP value) is 5
MAX_VARIABLE_LIST_ITEMS = 1_000
MAX_VARIABLE_VALUES = 10_000  # every list item, object entry and scalar, in all variables of one operation
MAX_VARIABLE_STRING = 1024 * 1024  # characters
# WebSocket messages bypass BodySizeLimit (uvicorn accepts up to 16 MiB): one 14 MB message of small list items
# decoded to ~80 MB of objects. Messages over HTTP's default body limit are refused before decoding.
MAX_WS_MESSAGE_CHARS = 2 * 1024 * 1024

_NEITHER_QUOTE_NOR_BRACKET = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_nested_deeper_than(limit: int, raw: bytes) -> bool:
    """Whether arrays and objects nest deeper than `limit` in this JSON text (brackets in strings do not count).
    C-level passes only (bytes methods, itertools): no recursion and no Python step per character. A 2.4 MB
    body of 60k small objects took 35 ms (json.loads: 64 ms), 1.2 MB with a bracket in every string 54 ms
    (json.loads: 52 ms). Up to the first character JSON refuses, it reads the text as JSON does, so the
    decoder never recurses deeper than the depth measured here."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the opening brackets bound the depth
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes and brackets only. Two adjacent quotes enclose nothing: dropping them keeps the others' parity.
    skeleton = unescaped.translate(None, _NEITHER_QUOTE_NOR_BRACKET).replace(b'""', b"")
    outside_strings = b"".join(skeleton.split(b'"')[::2])
    depths = accumulate(map(_BRACKET_STEP.__getitem__, outside_strings))
    return next(filter(limit.__lt__, depths), None) is not None


def decode_json(data: str | bytes) -> object:
    """json.loads of a document nested at most MAX_JSON_DEPTH deep; deeper is malformed (JSONDecodeError,
    which callers answer as such). Whatever does decode has its variables checked (variables_problem) before
    anything recursive walks them."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if json_nested_deeper_than(MAX_JSON_DEPTH, raw):
        raise json.JSONDecodeError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
    return json.loads(data)


def query_problem(query: object) -> str | None:
    if isinstance(query, str) and len(query) > MAX_QUERY_CHARS:
        return f"the GraphQL document is longer than {MAX_QUERY_CHARS} characters (send large values as variables)"
    return None


def check_operation(query: object, variables: object, extensions: object) -> None:
    """Refuse (RequestRefused) one operation whose document or variables are out of bounds. Raised where it is
    made: an exception held in a local of a frame its traceback holds is a cycle that keeps the request's
    decoded variables alive until a full collection."""
    if problem := query_problem(query):
        raise RequestRefused(problem, code=QUERY_TOO_COMPLEX)
    if problem := variables_problem(variables) or variables_problem(extensions):
        raise RequestRefused(problem)


def variables_problem(variables: object) -> str | None:
    """Why these GraphQL variables are refused (BAD_USER_INPUT), or None. Iterative: no recursion on input."""
    if variables is None:
        return None
    stack: list[tuple[object, int]] = [(variables, 1)]
    values = 0
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_VARIABLE_VALUES:
            return f"variables hold more than {MAX_VARIABLE_VALUES} values"
        if isinstance(value, str):
            if len(value) > MAX_VARIABLE_STRING:
                return f"a variable holds a string longer than {MAX_VARIABLE_STRING} characters"
        elif isinstance(value, (list, dict)):
            if depth > MAX_VARIABLES_DEPTH:
                return f"variables nested deeper than {MAX_VARIABLES_DEPTH} levels"
            if isinstance(value, list) and len(value) > MAX_VARIABLE_LIST_ITEMS:
                return f"a variable holds a list of more than {MAX_VARIABLE_LIST_ITEMS} items"
            if len(value) > MAX_VARIABLE_VALUES:
                return f"variables hold more than {MAX_VARIABLE_VALUES} values"
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return None
