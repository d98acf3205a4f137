"""Errors that say what failed: the data extension, the request (never the token) and the cause."""


class MarketingCloudError(Exception):
    """A Marketing Cloud call failed.

    The message always carries the data extension (when known), the request line and Marketing Cloud's
    own `message`/`errorcode`, so an operator reading a failed run knows what to fix without a debugger.
    Tokens and secrets are never part of it: requests carry the token in a header, which is not shown.
    """

    def __init__(
        self,
        message: str,
        *,
        data_extension: str | None = None,
        request: str | None = None,
        status: int | None = None,
        errorcode: int | str | None = None,
    ) -> None:
        self.reason = message
        self.data_extension = data_extension
        self.request = request
        self.status = status
        self.errorcode = errorcode
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.reason]
        if self.data_extension:
            parts.append(f"data extension: {self.data_extension}")
        if self.request:
            parts.append(f"request: {self.request}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.errorcode is not None:
            parts.append(f"errorcode {self.errorcode}")
        return parts[0] + (" [" + "; ".join(parts[1:]) + "]" if len(parts) > 1 else "")

    def with_context(self, *, data_extension: str | None = None) -> "MarketingCloudError":
        """The same error naming the data extension (set where the caller knows it)."""
        if data_extension and not self.data_extension:
            self.data_extension = data_extension
            self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class AuthenticationError(MarketingCloudError):
    """The token endpoint refused the credentials (`invalid_client`). Never retried: it cannot succeed."""


class DataExtensionNotFoundError(MarketingCloudError):
    """No data extension has this external key in the account (or the token cannot see it)."""


class SchemaDriftError(MarketingCloudError):
    """The data extension's columns differ from what the configuration expects."""


class InconsistentReadError(MarketingCloudError):
    """Rows changed while the pages were read, and re-reading did not give a consistent snapshot."""


class RetryableError(MarketingCloudError):
    """A transient failure (429, 5xx, timeout, dropped connection, malformed page): retried with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
