"""Engine errors. Each maps to one gRPC status code in the protocol layer."""


class PfsError(Exception):
    code = "UNKNOWN"


class NotFound(PfsError):
    code = "NOT_FOUND"


class AlreadyExists(PfsError):
    code = "ALREADY_EXISTS"


class InvalidArgument(PfsError):
    code = "INVALID_ARGUMENT"


class FailedPrecondition(PfsError):
    code = "FAILED_PRECONDITION"


class Unimplemented(PfsError):
    code = "UNIMPLEMENTED"


class Unauthenticated(PfsError):
    code = "UNAUTHENTICATED"


class PermissionDenied(PfsError):
    code = "PERMISSION_DENIED"


class Internal(PfsError):
    code = "INTERNAL"


class Unknown(PfsError):
    code = "UNKNOWN"
