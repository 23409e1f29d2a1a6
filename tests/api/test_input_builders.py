"""The converters of graphql_api.schema.input_builders build the same input objects as strawberry's own conversion,
for every input type of the schema: every field given, only the required ones, and every nullable one an explicit
null. Values go through graphql-core's coercion first, as a request's variables do."""

import contextlib
from collections.abc import Iterator

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    coerce_input_value,
)
from strawberry.types.arguments import convert_argument

from graphql_api.schema import input_builders, schema

SCALARS = {"String": "text", "ID": "id-1", "Int": 3, "Float": 1.5, "Boolean": True, "DateTime": "2026-01-02T03:04:05+00:00",
           "JSON": {"a": [1, 2]}}
INPUT_TYPES = sorted(
    (name, known.definition) for name, known in schema.schema_converter.type_map.items() if getattr(known.definition, "is_input", False)
)


def _sample(type_, shape: str, depth: int = 0) -> object:  # noqa: ANN001
    nullable = not isinstance(type_, GraphQLNonNull)
    inner = type_ if nullable else type_.of_type
    if nullable and shape == "nulls":
        return None
    if isinstance(inner, GraphQLList):
        return [_sample(inner.of_type, shape, depth), _sample(inner.of_type, shape, depth)]
    if isinstance(inner, GraphQLEnumType):
        return list(inner.values)[-1]
    if isinstance(inner, GraphQLScalarType):
        return SCALARS[inner.name]
    assert isinstance(inner, GraphQLInputObjectType)
    return {
        name: _sample(field.type, shape, depth + 1)
        for name, field in inner.fields.items()
        if shape != "required" or (isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined) or depth > 3
    }


@contextlib.contextmanager
def _strawberrys_own_conversion() -> Iterator[None]:
    builders = {name: definition.from_input for name, definition in INPUT_TYPES}
    for _, definition in INPUT_TYPES:
        definition.from_input = None
    try:
        yield
    finally:
        for name, definition in INPUT_TYPES:
            definition.from_input = builders[name]


def test_every_input_type_has_a_builder():
    assert len(INPUT_TYPES) >= 10
    assert all(isinstance(definition.from_input, input_builders.InputBuilder) for _, definition in INPUT_TYPES)


@pytest.mark.parametrize("shape", ["full", "required", "nulls"])
@pytest.mark.parametrize("name", [name for name, _ in INPUT_TYPES])
def test_the_builder_builds_what_strawberry_builds(name: str, shape: str):
    graphql_type = schema._schema.type_map[name]
    cls = schema.schema_converter.type_map[name].definition.origin
    value = coerce_input_value(_sample(GraphQLNonNull(graphql_type), shape), graphql_type)
    assert isinstance(value, dict)
    registry, config = schema.schema_converter.scalar_registry, schema.config
    built = convert_argument(value, cls, registry, config)
    with _strawberrys_own_conversion():
        expected = convert_argument(value, cls, registry, config)
    assert type(built) is cls
    assert built == expected
    assert repr(built) == repr(expected)  # the same types inside (enum members, lists, nested inputs)


def test_a_list_given_as_the_default_is_copied():
    """graphql-core hands every request that omits a list field the same default list: changing one must not change
    the next request's."""
    from graphql_api.schema.types.inputs import MlPredictionInput

    graphql_type = schema._schema.type_map["MlPredictionInput"]
    value = coerce_input_value({"modelVersion": "v", "confidence": 0.9, "prediction": True}, graphql_type)
    first = convert_argument(value, MlPredictionInput, schema.schema_converter.scalar_registry, schema.config)
    first.shap_values.append("changed")
    second = convert_argument(value, MlPredictionInput, schema.schema_converter.scalar_registry, schema.config)
    assert second.shap_values == []
