"""Errors that say what failed: the dataset, the batch, the request (never the token) and Platform's reason.

An operator reading a failed run should know what to fix without a debugger, so every error carries the
dataset and batch ids when known, the request line (method and path only: the token travels in a header and
the client secret in a form body, neither is ever rendered) and Platform's own code/title/detail.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sfmc_assets.lib.http import ServiceError, Transient


class ExperiencePlatformError(ServiceError):
    """An Experience Platform (or IMS) call failed."""

    CONTEXT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("dataset", "dataset: {}"), ("batch_id", "batch: {}"), ("request", "request: {}"), ("status", "HTTP {}"),
        ("code", "code {}"), ("title", "title {}"), ("detail", "detail: {}"),
    )
    dataset: str | None
    batch_id: str | None
    code: str | None
    title: str | None
    detail: str | None

    def _shown(self, name: str, value: Any) -> bool:
        # The detail is usually already part of the reason; only repeat it when it adds something.
        return super()._shown(name, value) and not (name == "detail" and str(value) in self.reason)


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


class RetryableError(ExperiencePlatformError, Transient):
    """A transient failure (429, 5xx, timeout, dropped connection, malformed body): retried when idempotent."""
