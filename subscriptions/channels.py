"""Route one job to the sender for its subscriber's scheme.

``http``/``https``: a webhook. ``trust+http(s)``: the same webhook to the URL
without ``trust+``, carrying the named server-side credential as
``X-Auth-Token`` (Zaqar's trust subscribers, without Keystone). ``mailto``:
SMTP. Anything else is a final ``invalid_request`` (the API refuses such
subscribers, so this only meets rows written by something else).
"""

from __future__ import annotations

import dataclasses
import ssl

import httpx

from queues.models import DeliveryJob, Subscription
from subscriptions import mailto, webhook
from subscriptions import result as r
from subscriptions.credentials import OPTION as CREDENTIAL_OPTION
from subscriptions.credentials import Credentials
from subscriptions.result import DeliveryResult


@dataclasses.dataclass(frozen=True)
class Limits:
    max_response_bytes: int = webhook.DEFAULT_MAX_RESPONSE_BYTES
    deadline: float = 30.0


class Channels:
    """Everything a delivery needs besides the job: clients and secrets."""

    def __init__(self, client: httpx.AsyncClient, smtp: mailto.SmtpSettings,
                 credentials: Credentials, limits: Limits = Limits(),
                 smtp_ssl: ssl.SSLContext | None = None) -> None:
        self._client = client
        self._smtp = smtp
        self._credentials = credentials
        self._limits = limits
        self._smtp_ssl = smtp_ssl

    async def deliver(self, subscription: Subscription, job: DeliveryJob,
                      now: float) -> DeliveryResult:
        """One attempt; never raises for a delivery failure."""
        scheme = subscription.subscriber.partition(":")[0].lower()
        if scheme in ("http", "https"):
            return await self._webhook(subscription, job, now)
        if scheme in ("trust+http", "trust+https"):
            return await self._trusted(subscription, job, now)
        if scheme == "mailto":
            return await mailto.deliver(subscription, job, self._smtp,
                                        ssl_context=self._smtp_ssl)
        return DeliveryResult(error=r.INVALID_REQUEST,
                              detail=f"unsupported subscriber scheme {scheme!r}")

    async def _webhook(self, subscription: Subscription, job: DeliveryJob,
                       now: float, extra: dict[str, str] | None = None
                       ) -> DeliveryResult:
        return await webhook.deliver(
            self._client, subscription, job, now=now,
            max_response_bytes=self._limits.max_response_bytes,
            deadline=self._limits.deadline, extra_headers=extra)

    async def _trusted(self, subscription: Subscription, job: DeliveryJob,
                       now: float) -> DeliveryResult:
        name = subscription.options.get(CREDENTIAL_OPTION)
        token = self._credentials.token(name) if isinstance(name, str) else None
        if token is None:
            return DeliveryResult(
                error=r.INVALID_REQUEST,
                detail=f"credential {name!r} is not configured on this dispatcher")
        return await self._webhook(subscription, job, now, {"X-Auth-Token": token})
