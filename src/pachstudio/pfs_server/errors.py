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
