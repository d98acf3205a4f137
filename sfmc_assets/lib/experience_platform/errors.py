"""Errors that say what failed: the dataset, the batch, the request (never the token) and Platform's reason.

An operator reading a failed run should know what to fix without a debugger, so every error carries the
dataset and batch ids when known, the request line (method and path only: the token travels in a header and
the client secret in a form body, neither is ever rendered) and Platform's own code/title/detail.
"""

from collections.abc import Mapping, Sequence
from typing import Any


class ExperiencePlatformError(Exception):
    """An Experience Platform (or IMS) call failed."""

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        batch_id: str | None = None,
        request: str | None = None,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.reason = message
        self.dataset = dataset
        self.batch_id = batch_id
        self.request = request
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.reason]
        if self.dataset:
            parts.append(f"dataset: {self.dataset}")
        if self.batch_id:
            parts.append(f"batch: {self.batch_id}")
        if self.request:
            parts.append(f"request: {self.request}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.title:
            parts.append(f"title {self.title}")
        # The detail is usually already part of the reason; only repeat it when it adds something.
        if self.detail and self.detail not in self.reason:
            parts.append(f"detail: {self.detail}")
        return parts[0] + (" [" + "; ".join(parts[1:]) + "]" if len(parts) > 1 else "")

    def with_context(self, *, dataset: str | None = None, batch_id: str | None = None) -> "ExperiencePlatformError":
        """The same error naming the dataset/batch (set where the caller knows them)."""
        if dataset and not self.dataset:
            self.dataset = dataset
        if batch_id and not self.batch_id:
            self.batch_id = batch_id
        self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class AuthenticationError(ExperiencePlatformError):
    """IMS refused the credentials (`invalid_client`, `invalid_scope`...). Never retried: it cannot succeed."""


class AccessDeniedError(ExperiencePlatformError):
    """The Platform gateway refused the call: API key, org, sandbox name or entitlement is wrong."""


class DatasetNotFoundError(ExperiencePlatformError):
    """No dataset with this id in the org + sandbox the client talks to."""


class BatchNotFoundError(ExperiencePlatformError):
    """No batch with this id (or the batch does not belong to the dataset named in the call)."""


class FileTooLargeError(ExperiencePlatformError):
    """The file exceeds the small-file upload limit (256 MB); it must be split into several files."""


class BatchCreateError(ExperiencePlatformError):
    """Creating a batch failed and could not be recovered; says whether a batch may have been left behind."""


class BatchFailedError(ExperiencePlatformError):
    """The batch ended `failed` (or `aborted`/`abandoned`); `errors` holds Platform's codes and descriptions."""

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[Mapping[str, Any]] = (),
        metrics: Mapping[str, Any] | None = None,
        final_status: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.errors = [dict(e) for e in errors]
        self.metrics = dict(metrics or {})
        self.final_status = final_status
        codes = [str(e.get("code")) for e in self.errors if e.get("code") is not None]
        kwargs.setdefault("code", ",".join(codes) or None)
        super().__init__(message, **kwargs)

    @property
    def error_codes(self) -> list[str]:
        return [str(e.get("code")) for e in self.errors if e.get("code") is not None]


class BatchStuckError(ExperiencePlatformError):
    """The batch had not reached a final state at the deadline; `aborted` says whether it was aborted."""

    def __init__(self, message: str, *, last_status: str | None = None, aborted: bool = False,
                 **kwargs: Any) -> None:
        self.last_status = last_status
        self.aborted = aborted
        super().__init__(message, **kwargs)


class RetryableError(ExperiencePlatformError):
    """A transient failure (429, 5xx, timeout, dropped connection, malformed body): retried when idempotent."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)
