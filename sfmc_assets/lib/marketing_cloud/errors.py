"""Errors that say what failed: the data extension, the request (never the token) and the cause."""

from typing import ClassVar

from sfmc_assets.lib.http import ServiceError, Transient


class MarketingCloudError(ServiceError):
    """A Marketing Cloud call failed.

    The message always carries the data extension (when known), the request line and Marketing Cloud's
    own `message`/`errorcode`, so an operator reading a failed run knows what to fix without a debugger.
    Tokens and secrets are never part of it: requests carry the token in a header, which is not shown.
    """

    CONTEXT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("data_extension", "data extension: {}"), ("request", "request: {}"), ("status", "HTTP {}"),
        ("code", "errorcode {}"),  # Marketing Cloud's `errorcode`
    )
    data_extension: str | None
    code: int | str | None


class AuthenticationError(MarketingCloudError):
    """The token endpoint refused the credentials (`invalid_client`). Never retried: it cannot succeed."""


class DataExtensionNotFoundError(MarketingCloudError):
    """No data extension has this external key in the account (or the token cannot see it)."""


class SchemaDriftError(MarketingCloudError):
    """The data extension's columns differ from what the configuration expects."""


class InconsistentReadError(MarketingCloudError):
    """Rows changed while the pages were read, and re-reading did not give a consistent snapshot."""


class RetryableError(MarketingCloudError, Transient):
    """A transient failure (429, 5xx, timeout, dropped connection, malformed page): retried with backoff."""
