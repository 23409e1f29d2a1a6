"""Results of mutations that return more than the changed object."""

import strawberry

from graphql_api.schema.types.patch import Patch


@strawberry.type
class SubmitPatchPayload:
    patch: Patch
    created: bool
