"""Input objects built by a converter made once per input type, through strawberry's documented `from_input` hook
(`StrawberryObjectDefinition.from_input`).

Without it strawberry converts every input value field by field with its generic `convert_argument`: each field's
GraphQL name, type and kind are worked out again for every value. A `submitPatches` of 500 patches did that for
~8,000 fields, a quarter of the request's server CPU. The converter here reads the same facts once per type and then
only copies: scalars and enums as graphql-core coerced them (strawberry returns those unchanged too), lists of them
copied, nested inputs with their own converter, anything else through strawberry's conversion (`InputContext.convert`).
The result is the same object strawberry builds: tests/api/test_input_builders.py compares the two on every input
type of the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, replace
from typing import Any

from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.relay.types import GlobalID
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Converter = Callable[[object, InputContext, str], object]


def install(definitions: Iterable[object]) -> None:
    """Give each input type without a `from_input` of its own (and without `Maybe` fields, whose nulls strawberry
    validates only for types that have none) the converter below."""
    for definition in definitions:
        if isinstance(definition, StrawberryObjectDefinition) and definition.is_input and definition.from_input is None and not any(_has_maybe(f.type) for f in definition.fields):
            definition.from_input = InputBuilder(definition)


def _has_maybe(type_: object) -> bool:
    while isinstance(type_, (StrawberryOptional, StrawberryList)):
        if isinstance(type_, StrawberryMaybe):
            return True
        type_ = type_.of_type
    return False


class InputBuilder:
    def __init__(self, definition: StrawberryObjectDefinition) -> None:
        self.definition = definition
        self._fields: list[tuple[str, str, Converter]] | None = None  # (GraphQL name, Python name, converter)
        self._required: dict[str, None] = {}

    def __call__(self, cls: type, value: Mapping[str, Any], context: InputContext) -> object:
        fields = self._fields if self._fields is not None else self._compile(context)
        kwargs: dict[str, object] = dict(self._required)  # graphql-core has checked the required ones are there
        for graphql_name, python_name, convert in fields:
            if graphql_name in value:
                kwargs[python_name] = convert(value[graphql_name], context, graphql_name)
        return cls(**kwargs)

    def _compile(self, context: InputContext) -> list[tuple[str, str, Converter]]:
        definition, registry = self.definition, context.scalar_registry
        fields = []
        for field in definition.fields:
            graphql_name = context.config.name_converter.from_field(field)
            fields.append((graphql_name, field.python_name, _converter(field.resolve_type(type_definition=definition), registry)))
        self._required = {
            field.python_name: None for field in definition.fields if field.default_value is MISSING and field.default_factory is MISSING
        }
        self._fields = fields
        return fields


def _converter(type_: StrawberryType | type, registry: Mapping) -> Converter:
    if isinstance(type_, LazyType):
        type_ = type_.resolve_type()
    if isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
        return _converter(type_.of_type, registry)  # a null stays None below: every converter passes it through
    if _is_leaf(type_, registry):
        return _unchanged
    if isinstance(type_, StrawberryList):
        item = type_.of_type.of_type if isinstance(type_.of_type, StrawberryOptional) else type_.of_type
        if not isinstance(type_.of_type, StrawberryMaybe) and _is_leaf(item, registry):
            return _copied_list
        convert_item = _converter(type_.of_type, registry)

        def convert_list(value: object, context: InputContext, key: str) -> object:
            if value is None or value is UNSET:
                return value
            inside = _at(context, key)
            return [convert_item(item, inside, index) for index, item in enumerate(value)]  # type: ignore[arg-type]

        return convert_list
    if has_object_definition(type_) and isinstance(type_.__strawberry_definition__.from_input, InputBuilder):
        build = type_.__strawberry_definition__.from_input
        return lambda value, context, key: value if value is None or value is UNSET else build(type_, value, _at(context, key))  # type: ignore[arg-type]
    return lambda value, context, key: context.convert(value, type_, key)  # strawberry's own conversion


def _is_leaf(type_: object, registry: Mapping) -> bool:
    if type_ is GlobalID:  # decoded by strawberry's conversion
        return False
    return is_scalar(type_, registry) or isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_)


def _unchanged(value: object, _context: InputContext, _key: str) -> object:
    return value


def _copied_list(value: object, _context: InputContext, _key: str) -> object:
    # A copy, as strawberry makes: graphql-core hands every request that omits the value the same default list.
    return value if value is None or value is UNSET else list(value)  # type: ignore[call-overload]


def _at(context: InputContext, key: str | int) -> InputContext:
    return replace(context, path=(*context.path, key))
