"""One ``mailto:`` delivery over SMTP (``smtplib`` in a worker thread).

As Zaqar (zaqar-v2-api.md §5.2): To is the URI path, Subject is the URI's
``?subject=`` or ``options.subject``, From is ``options.from`` (or the
configured sender), and the body is the payload JSON. Differences: the
envelope sender is always the configured one (bounces reach the operator, and
a subscriber's ``from`` cannot pass for the relay's own domain at the SMTP
level), and ``Message-ID`` is derived from the delivery id, so retries of one
notification carry the same id.

No aiosmtplib is installed, so the blocking client runs in
``asyncio.to_thread``; ``SmtpSettings.timeout`` bounds each socket operation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.message
import email.utils
import smtplib
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from queues.models import DeliveryJob, Subscription
from subscriptions import result as r
from subscriptions.payload import build_payload, delivery_id, encode_payload
from subscriptions.result import DeliveryResult

SECURITY_MODES = ("none", "starttls", "tls")


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    """The relay. ``security``: ``none``, ``starttls`` or ``tls`` (implicit
    TLS, port 465). Credentials are used only when ``username`` is set, and
    never over a connection without TLS."""

    host: str = "localhost"
    port: int = 25
    security: str = "none"
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    timeout: float = 30.0
    sender: str = "mailslot@localhost"


@dataclasses.dataclass(frozen=True, slots=True)
class MailTarget:
    to: tuple[str, ...]
    subject: str | None


class InvalidMail(ValueError):
    """The subscription cannot produce a valid message."""


def parse_mailto(uri: str) -> MailTarget:
    """Recipients (comma-separated, percent-decoded) and ``?subject=``
    (query keys are case-insensitive, as in Zaqar)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "mailto":
        raise InvalidMail("not a mailto: URI")
    to = tuple(_address(a) for a in urllib.parse.unquote(parts.path).split(",") if a)
    if not to:
        raise InvalidMail("mailto: URI has no recipient")
    query = {k.lower(): v for k, v in urllib.parse.parse_qsl(parts.query)}
    return MailTarget(to, query.get("subject"))


def _address(text: str) -> str:
    text = text.strip()
    _, addr = email.utils.parseaddr(text)
    # ASCII only: SMTPUTF8 relays are rare, and smtplib would fail later.
    if (not addr or addr != text or "@" not in addr or not addr.isascii()
            or _has_control(addr)):
        raise InvalidMail(f"invalid recipient address {text!r}")
    return addr


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def build_email(subscription: Subscription, job: DeliveryJob, settings: SmtpSettings
                ) -> tuple[email.message.EmailMessage, MailTarget]:
    target = parse_mailto(subscription.subscriber)
    payload = build_payload(job.message, queue=job.queue, message_id=job.message_id,
                            subscription_id=subscription.id)
    options: Mapping[str, Any] = subscription.options
    msg = email.message.EmailMessage()
    msg["To"] = ", ".join(target.to)
    msg["From"] = _header(options.get("from") or settings.sender)
    subject = target.subject if target.subject is not None else options.get("subject")
    if subject:
        msg["Subject"] = _header(subject)
    domain = settings.sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = f"<{delivery_id(subscription.id, job.message_id)}@{domain}>"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg.set_content(encode_payload(payload))
    return msg, target


def _header(value: Any) -> str:
    text = str(value)
    if _has_control(text):
        raise InvalidMail("mail header values may not contain control characters")
    return text


def send_sync(msg: email.message.EmailMessage, to: tuple[str, ...],
              settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None
              ) -> str:
    """Blocking send; returns a note for the delivery log."""
    context = ssl_context or ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if settings.security == "tls" else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": context} if settings.security == "tls" else {}
    with smtp_class(settings.host, settings.port, timeout=settings.timeout,
                    **kwargs) as smtp:
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            if settings.security == "none":
                raise smtplib.SMTPNotSupportedError(
                    "refusing to send SMTP credentials without TLS")
            smtp.login(settings.username, settings.password)
        refused = smtp.send_message(msg, from_addr=settings.sender, to_addrs=list(to))
    # Some recipients accepted it: count it delivered (a retry would send the
    # others a duplicate) and leave the refusals in the delivery log.
    if refused:
        return "accepted; refused: " + ", ".join(
            f"{addr} {code}" for addr, (code, _) in refused.items())
    return f"accepted by {settings.host}"


async def deliver(subscription: Subscription, job: DeliveryJob,
                  settings: SmtpSettings, *,
                  ssl_context: ssl.SSLContext | None = None) -> DeliveryResult:
    """Send one notification mail; never raises for a delivery failure."""
    if settings.security not in SECURITY_MODES:
        return DeliveryResult(error=r.INVALID_REQUEST,
                              detail=f"unknown SMTP security {settings.security!r}")
    try:
        msg, target = build_email(subscription, job, settings)
    except ValueError as ex:  # InvalidMail, InvalidPayload, bad header
        return DeliveryResult(error=r.INVALID_REQUEST, detail=str(ex)[:500])
    started = time.monotonic()
    try:
        reply = await asyncio.to_thread(send_sync, msg, target.to, settings,
                                        ssl_context)
    except Exception as ex:
        return DeliveryResult(error=smtp_error_class(ex),
                              detail=f"{type(ex).__name__}: {ex}"[:500],
                              latency_ms=(time.monotonic() - started) * 1000)
    return DeliveryResult(latency_ms=(time.monotonic() - started) * 1000,
                          response=reply[:500])


def smtp_error_class(ex: BaseException) -> str:
    """Map an smtplib/socket failure to a ``subscriptions.result`` class:
    5xx replies are final, 4xx and transport trouble are retried, and our
    own relay refusing our credentials is retried (an operator can fix it)."""
    if isinstance(ex, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in ex.recipients.values()]
        return r.SMTP_REJECTED if codes and all(c >= 500 for c in codes) \
            else r.SMTP_TRANSIENT
    if isinstance(ex, smtplib.SMTPAuthenticationError):
        return r.SMTP_AUTH
    if isinstance(ex, smtplib.SMTPResponseException):
        return r.SMTP_REJECTED if ex.smtp_code >= 500 else r.SMTP_TRANSIENT
    if isinstance(ex, (smtplib.SMTPNotSupportedError, ssl.SSLError)):
        return r.TLS
    if isinstance(ex, smtplib.SMTPServerDisconnected):
        return r.NETWORK
    if isinstance(ex, (TimeoutError, socket.timeout)):
        return r.TIMEOUT
    if isinstance(ex, socket.gaierror):
        return r.DNS
    if isinstance(ex, OSError):
        return r.CONNECT
    return r.INTERNAL
