"""Errors a person can act on, each with the HTTP status the API answers with."""


class MountError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(MountError):
    status = 400


class NotFound(MountError):
    status = 404


class Refused(MountError):
    """The cluster refused our token (or this token's access): logging in again is the fix."""

    status = 403


class Conflict(MountError):
    status = 409


class Unavailable(MountError):
    """The cluster cannot be reached (or is not configured)."""

    status = 503


class Unauthenticated(MountError):
    """Auth is on and no token is held: log in (PUT /auth/_login_token), as pachctl's 401."""

    status = 401
