"""The dialer's exceptions. Their docstrings are the default messages."""

from __future__ import annotations


class DialerError(Exception):
    """The dialer failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(DialerError):
    """The configuration is invalid."""


class DatabaseUnavailable(DialerError):
    """PostgreSQL cannot be reached."""


class MigrationError(DialerError):
    """The database schema could not be brought up to date."""


class AmiError(DialerError):
    """An AMI action failed."""


class AmiAuthError(AmiError):
    """Asterisk refused the AMI username or secret."""


class AmiDisconnected(AmiError):
    """The AMI connection is down."""


class RequestError(DialerError):
    """The request cannot be carried out.

    Raised by the operations the HTTP API and the CLI share; ``code`` is the
    stable, machine-readable name of the problem and ``details`` says more.
    """

    code = "bad_request"

    def __init__(
        self, message: str | None = None, *, code: str | None = None, details: object = None
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details


class NotFound(RequestError):
    """No such resource."""

    code = "not_found"


class Conflict(RequestError):
    """The resource is not in a state that allows this."""

    code = "conflict"


class InvalidInput(RequestError):
    """The request's data is invalid."""

    code = "validation_failed"
