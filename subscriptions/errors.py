"""Errors raised by the subscription building blocks.

The validation errors subclass ``queues.errors.InvalidInput`` so that, when
the API validates a subscription with them, the existing error mapping
answers 400.
"""

from __future__ import annotations

from queues.errors import InvalidInput, MailslotError


class InvalidRetryPolicy(InvalidInput):
    """A ``_retry_policy`` that Mailslot refuses (bad type, range or caps)."""


class InvalidSubscriberOptions(InvalidInput):
    """Options a workflow (``mistral+``) or orchestration (``heat+``)
    subscriber cannot act on; the message says which option and why."""


class BlockedDestination(InvalidInput):
    """A subscriber URL or resolved address the SSRF guard refuses.

    ``reason`` is a short class name such as ``"loopback"`` or ``"metadata"``;
    ``address`` is the offending IP when one was resolved.
    """

    def __init__(self, reason: str, host: str = "", address: str | None = None
                 ) -> None:
        where = f" ({address})" if address and address != host else ""
        super().__init__(f"Destination {host}{where} is not allowed: {reason}.")
        self.reason = reason
        self.host = host
        self.address = address


class ResolutionFailed(MailslotError):
    """The subscriber's host name did not resolve (retryable)."""
