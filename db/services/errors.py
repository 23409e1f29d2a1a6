"""One error hierarchy; `code` is the GraphQL `extensions.code` of API.md."""


class DomainError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: object) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {key: value for key, value in extensions.items() if value is not None}


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class BadUserInput(DomainError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message, field=field, index=index)
        self.field = field


class Conflict(DomainError):
    code = "CONFLICT"

    def __init__(self, message: str, *, current_status: str | None = None, current_version: int | None = None) -> None:
        super().__init__(message, currentStatus=current_status, currentVersion=current_version)
        self.current_status = current_status
        self.current_version = current_version
