"""An outbound campaign dialer for Asterisk."""

__version__ = "0.1.0"
