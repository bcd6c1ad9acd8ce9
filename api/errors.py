"""Domain errors: services raise them, the API's exception handler answers them."""


class DomainError(Exception):
    status_code = 400
    code = "invalid"
    field: str | None = None  # the request field at fault, when there is one

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class NoCapableNode(Conflict):
    code = "no_capable_node"


class Forbidden(DomainError):
    status_code = 403
    code = "permission_denied"
