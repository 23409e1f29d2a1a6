"""Request JSON is refused past MAX_JSON_DEPTH before it is decoded (graphql_api.request_limits).

Decoding used to recurse to Python's recursion limit and turn the RecursionError into a refusal. In `hitl serve`
a garbage collection can strike on that stack, and the collection's timing callback (graphql_api.server)
then overflowed it: CI saw "RecursionError" logged from the callback during the 50k-nested-objects attack.
"""

import gc
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api import request_limits, server
from graphql_api.metrics import Metrics

pytestmark = pytest.mark.hardening

# Strings made of the characters that could fool a scanner: quotes, backslashes and brackets.
_TRICKY_TEXT = st.text(alphabet='"\\[]{}a\n\u00e9', max_size=6)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY_TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_TRICKY_TEXT, children, max_size=3),
    max_leaves=30,
)


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


@settings(max_examples=300, derandomize=True, database=None)
@given(value=JSON_VALUES, limit=st.integers(min_value=0, max_value=8), ascii_only=st.booleans())
def test_measured_depth_is_the_json_depth(value, limit, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert request_limits.json_nested_deeper_than(limit, text.encode()) == (depth(value) > limit)


def test_brackets_in_strings_and_escapes_do_not_count():
    inside = json.dumps({"a": "[" * 500, "b": '\\"' + "{" * 500, "c": "\\", "d": ["]" * 500]}).encode()
    assert not request_limits.json_nested_deeper_than(2, inside)
    assert request_limits.decode_json(inside)["d"] == ["]" * 500]


def test_a_document_at_the_limit_decodes_and_one_level_more_is_malformed():
    at_limit = "[" * request_limits.MAX_JSON_DEPTH + "]" * request_limits.MAX_JSON_DEPTH
    assert request_limits.decode_json(at_limit) is not None
    with pytest.raises(json.JSONDecodeError, match=f"nested deeper than {request_limits.MAX_JSON_DEPTH} levels"):
        request_limits.decode_json("[" + at_limit + "]")


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b'{"variables":{"x":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}}", id="50k nested objects"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="100k nested arrays (text)"),
        pytest.param(b'"x",' + b"[" * 5_000, id="5k unclosed arrays after a stray string"),
    ],
)
def test_deep_documents_are_refused_without_recursing(monkeypatch, document):
    """A collection at every allocation, timed by the served process's callback: none of them may fail."""
    failures = []
    monkeypatch.setattr(sys, "unraisablehook", failures.append)
    threshold = gc.get_threshold()
    callbacks = list(gc.callbacks)
    server._time_collections(Metrics())
    gc.set_threshold(1)
    try:
        with pytest.raises(json.JSONDecodeError):
            request_limits.decode_json(document)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks[:] = callbacks
    assert [failure.exc_type for failure in failures] == []
