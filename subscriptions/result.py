"""The record one delivery attempt produces, whatever the channel.

Senders (``webhook``, ``mailto``, ``mistral``, ``heat``) never raise for a failed delivery: they
return a ``DeliveryResult`` naming an error *class* from the list below, which
``classify`` turns into an outcome. ``detail`` and ``response`` go to the
delivery log, so they never hold secrets, signatures or request headers.
"""

from __future__ import annotations

import dataclasses

# Error classes. Retryable: the destination may recover by itself.
TIMEOUT = "timeout"            # connect, read or whole-delivery deadline
CONNECT = "connect"            # refused, unreachable, reset while connecting
DNS = "dns"                    # the host name did not resolve
NETWORK = "network"            # the connection broke mid-exchange
PROTOCOL = "protocol"          # a reply that is not valid HTTP/SMTP
TLS = "tls"                    # handshake or certificate failure
SMTP_TRANSIENT = "smtp_transient"  # an SMTP 4xx reply
SMTP_AUTH = "smtp_auth"        # our relay refused our credentials (operator fix)
BUSY = "busy"                  # the target is locked by another operation (Heat 409)
INTERNAL = "internal"          # an unexpected exception in Mailslot
# Final: retrying the same request cannot succeed.
BLOCKED = "blocked"            # the SSRF guard refused the destination
INVALID_REQUEST = "invalid_request"  # bad URL, headers, secret or payload
SMTP_REJECTED = "smtp_rejected"  # an SMTP 5xx reply (e.g. unknown mailbox)

RETRYABLE_ERRORS = frozenset({
    TIMEOUT, CONNECT, DNS, NETWORK, PROTOCOL, TLS, SMTP_TRANSIENT, SMTP_AUTH,
    BUSY, INTERNAL,
})
FINAL_ERRORS = frozenset({BLOCKED, INVALID_REQUEST, SMTP_REJECTED})


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one attempt.

    ``status`` is the HTTP status when a reply arrived. ``error`` is an error
    class when no usable reply arrived (or, with ``status`` also set, when the
    reply means "try later" though its status alone would not: a Heat 409).
    Neither set means a non-HTTP channel (SMTP) accepted the delivery, or an
    action sender judged it done without a 2xx (a Mistral execution that
    already exists, a Heat resource already replaced, a coalesced alarm).
    ``response`` is a bounded, decoded prefix of the reply body (or the SMTP
    server's reply); ``truncated`` says the body was longer. ``retry_after``
    is the raw ``Retry-After`` header, if any.
    """

    status: int | None = None
    error: str | None = None
    detail: str = ""
    latency_ms: float = 0.0
    response: str = ""
    truncated: bool = False
    retry_after: str | None = None
