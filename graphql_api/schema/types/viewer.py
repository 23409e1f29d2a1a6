"""Who is asking (`me`)."""

import strawberry


@strawberry.type
class Viewer:
    subject: str
    roles: list[str]
