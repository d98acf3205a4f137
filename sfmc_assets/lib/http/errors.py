"""The error base both clients share: a reason plus the context an operator needs, rendered one way.

Each service names its own context (Marketing Cloud: the data extension; Experience Platform: the dataset
and the batch) by listing it in `CONTEXT`; rendering, enrichment (`with_context`) and what a retry policy
reads (`retry_after`) are written once here. Nothing in the context is ever a secret: requests are named by
method and path (tokens travel in headers, client secrets in bodies), and server text is scrubbed before it
gets here (`ApiSession.scrub`).
"""

from typing import Any, ClassVar, TypeVar

E = TypeVar("E", bound="ServiceError")


class ServiceError(Exception):
    """A call to a remote service failed; `reason` says why, the context says where."""

    #: (attribute, label) of each piece of context, in the order it is rendered after the reason.
    CONTEXT: ClassVar[tuple[tuple[str, str], ...]] = (("request", "request: {}"), ("status", "HTTP {}"),
                                                       ("code", "code {}"))

    request: str | None
    status: int | None
    code: Any

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        names = {name for name, _ in self.CONTEXT}
        unknown = sorted(set(context) - names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no context field(s) {unknown}")
        self.reason = message
        #: Seconds the server asked us to wait (`Retry-After`), read by the retry policy.
        self.retry_after = retry_after
        for name in names:
            setattr(self, name, context.get(name))
        super().__init__(self._render())

    def context(self) -> dict[str, Any]:
        """The context fields and their values (None where unknown)."""
        return {name: getattr(self, name) for name, _ in self.CONTEXT}

    def _shown(self, name: str, value: Any) -> bool:
        """Whether a context value is worth rendering; subclasses drop repetitions."""
        return value is not None and value != ""

    def _render(self) -> str:
        parts = [label.format(getattr(self, name)) for name, label in self.CONTEXT
                 if self._shown(name, getattr(self, name))]
        return self.reason + (" [" + "; ".join(parts) + "]" if parts else "")

    def with_context(self: E, **context: Any) -> E:
        """The same error, naming what the caller knows and the error did not (e.g. the data extension)."""
        names = {name for name, _ in self.CONTEXT}
        for name, value in context.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__} has no context field {name!r}")
            if getattr(self, name) in (None, "") and value:
                setattr(self, name, value)
        self.args = (self._render(),)
        return self

    def __str__(self) -> str:
        return self._render()


class Transient(Exception):
    """Marks an error class as transient (429, 5xx, timeout, dropped connection, malformed body).

    The retry policy retries exactly these; a service's `RetryableError` inherits from it and from the
    service's own base error, so callers catching the service error still see it when retries run out.
    """
