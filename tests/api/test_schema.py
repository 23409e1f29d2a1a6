"""The served schema against its two references: the exported `schema.graphql` (no drift) and API.md (every
name there exists here, with the same type), plus a walk that fails on any resolver without a permission class.

API.md is read from the copy in tests/api/contract/, so that the checks run in any clone; where the shared
contract is checked out beside the repository, the copy must equal it."""

import re
from pathlib import Path

import pytest
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

from graphql_api.schema import schema

REPO = Path(__file__).resolve().parents[2]
API_MD = Path(__file__).parent / "contract" / "API.md"
SHARED_API_MD = REPO.parent / "shared" / "API.md"
GRAPHQL = schema._schema

# `name(args): Type` or `name: Type` (after comments are stripped); args may span nothing but one line.
FIELD = re.compile(r"(\w+)\s*(?:\(([^)]*)\))?\s*:\s*([\[\]\w!]+)")
ARGUMENT = re.compile(r"(\w+)\s*:\s*([\[\]\w!]+)(?:\s*=\s*([^,\s)]+))?")
BLOCK = re.compile(r"\b(enum|type|input)\s+(\w+)\s*\{(.*?)\}", re.S)
# Prose definitions of inputs: `PendingFilter { priority: [Priority!] severity: ... }`, `SubmitPatchInput { patchId! ... }`.
PROSE_INPUT = re.compile(r"`(\w+)\s*\{([^`{}]*)\}`")
INPUT_MEMBER = re.compile(r"(\w+)(!?)(?:\s*:\s*([\[\]\w!]+))?")


def test_exported_schema_has_not_drifted():
    exported = (REPO / "schema.graphql").read_text(encoding="utf-8")
    served = schema.as_str() + "\n"
    assert exported == served, "schema.graphql differs from the served schema: run `hitl export-schema --output schema.graphql`"


# --- API.md ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_md() -> str:
    return API_MD.read_text(encoding="utf-8")


@pytest.mark.skipif(not SHARED_API_MD.exists(), reason="the shared contract is not checked out beside the repository")
def test_the_contract_copy_is_the_shared_contract():
    assert API_MD.read_bytes() == SHARED_API_MD.read_bytes(), f"copy {SHARED_API_MD} over {API_MD}"


def graphql_blocks(markdown: str) -> dict[str, str]:
    """The ```graphql blocks, keyed by the heading above them, without comments."""
    blocks: dict[str, str] = {}
    heading, block = "", None
    for line in markdown.splitlines():
        if block is None and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif block is None and line.strip() == "```graphql":
            block = []
        elif block is not None and line.strip() == "```":
            blocks[heading] = "\n".join(block)
            block = None
        elif block is not None:
            block.append(line.split("#", 1)[0])
    return blocks


def type_string(graphql_type: object) -> str:
    return str(graphql_type)


def check_fields(owner: str, body: str, fields: dict, problems: list[str]) -> int:
    checked = 0
    for name, arguments, declared in FIELD.findall(body):
        field = fields.get(name)
        if field is None:
            problems.append(f"{owner}.{name} is missing")
            continue
        checked += 1
        if type_string(field.type) != declared:
            problems.append(f"{owner}.{name} is {field.type}, API.md says {declared}")
        for argument, argument_type, default in ARGUMENT.findall(arguments or ""):
            served = field.args.get(argument)
            if served is None:
                problems.append(f"{owner}.{name}({argument}) is missing")
                continue
            if type_string(served.type) != argument_type:
                problems.append(f"{owner}.{name}({argument}) is {served.type}, API.md says {argument_type}")
            if default and str(served.default_value) != default:
                problems.append(f"{owner}.{name}({argument}) defaults to {served.default_value!r}, API.md says {default}")
    return checked


def test_api_md_blocks_are_found(api_md):
    blocks = graphql_blocks(api_md)
    assert {"Types (abridged SDL)", "Queries", "Mutations", "Subscriptions"} <= set(blocks), list(blocks)


def test_types_and_enums_of_api_md_exist(api_md):
    problems: list[str] = []
    types = enums = 0
    for kind, name, body in BLOCK.findall(graphql_blocks(api_md)["Types (abridged SDL)"]):
        served = GRAPHQL.get_type(name)
        if served is None:
            problems.append(f"{kind} {name} is missing")
            continue
        if kind == "enum":
            enums += 1
            if not isinstance(served, GraphQLEnumType):
                problems.append(f"{name} is not an enum")
                continue
            missing = set(body.split()) - set(served.values)
            problems.extend(f"enum value {name}.{value} is missing" for value in sorted(missing))
        else:
            types += 1
            if not isinstance(served, GraphQLObjectType | GraphQLInterfaceType):
                problems.append(f"{name} is not an object type")
                continue
            if check_fields(name, body, served.fields, problems) == 0:
                problems.append(f"no field of {name} was parsed from API.md")
    assert not problems, "\n".join(problems)
    assert types >= 20 and enums >= 6, (types, enums)  # the parser found the SDL, not nothing


@pytest.mark.parametrize(("section", "root"), [("Queries", "query_type"), ("Mutations", "mutation_type"), ("Subscriptions", "subscription_type")])
def test_operations_of_api_md_exist(api_md, section, root):
    body = graphql_blocks(api_md)[section]
    root_type = getattr(GRAPHQL, root)
    assert root_type is not None, f"the schema has no {section[:-1].lower()} type"
    problems: list[str] = []
    checked = check_fields(root_type.name, body, root_type.fields, problems)
    assert not problems, "\n".join(problems)
    assert checked == len(FIELD.findall(body)) >= 3


def test_inputs_of_api_md_exist(api_md):
    problems: list[str] = []
    found = {}
    for name, body in PROSE_INPUT.findall(api_md):
        if not name[0].isupper():
            continue
        found[name] = body
        served = GRAPHQL.get_type(name)
        if not isinstance(served, GraphQLInputObjectType):
            problems.append(f"input {name} is missing")
            continue
        for member, required, declared in INPUT_MEMBER.findall(body):
            if declared and member == declared.strip("[]!"):
                continue
            field = served.fields.get(member)
            if field is None:
                problems.append(f"input {name}.{member} is missing")
                continue
            if declared and type_string(field.type) != declared:
                problems.append(f"input {name}.{member} is {field.type}, API.md says {declared}")
            if required and not type_string(field.type).endswith("!"):
                problems.append(f"input {name}.{member} is {field.type}, API.md says it is required")
    assert {"PendingFilter", "PatchFilter", "AuditFilter", "PatchEventFilter", "SubmitPatchInput"} <= set(found), sorted(found)
    # Inputs named only as argument types.
    for name in ("MlPredictionInput", "WargamingInput"):
        if not isinstance(GRAPHQL.get_type(name), GraphQLInputObjectType):
            problems.append(f"input {name} is missing")
    assert not problems, "\n".join(problems)


def test_error_codes_of_api_md_are_the_ones_the_code_uses(api_md):
    from db.services import errors

    documented = set(re.findall(r"`([A-Z_]{6,})`", api_md.split("## Errors", 1)[1].split("##", 1)[0]))
    used = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.DomainError)}
    assert used <= documented, used - documented


# --- authorization on every resolver --------------------------------------------------------------------


@pytest.mark.parametrize("root", ["Query", "Mutation", "Subscription"])
def test_every_root_field_has_a_permission_class(root):
    definition = schema.get_type_by_name(root)
    if definition is None and root == "Subscription":
        pytest.skip("no subscriptions in this schema")
    assert definition is not None and definition.fields
    unguarded = [field.graphql_name or field.python_name for field in definition.fields if field.python_name != "__typename" and not field.permission_classes]
    assert not unguarded, f"{root} fields without a permission class: {unguarded}"
    # And every one of them is served (no field is hidden from the walk by a rename).
    served = set(GRAPHQL.get_type(root).fields)
    assert {schema.config.name_converter.from_field(field) for field in definition.fields} == served
