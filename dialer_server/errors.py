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
