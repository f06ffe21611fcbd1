"""Route one job to the sender for its subscriber's scheme.

``http``/``https``: a webhook. ``trust+http(s)``: the same webhook to the URL
without ``trust+``, carrying the named server-side credential as
``X-Auth-Token`` (Zaqar's trust subscribers, without Keystone). ``mailto``:
SMTP. ``mistral+http(s)``: start a workflow execution (``mistral``);
``heat+http(s)``: heal or signal a stack resource (``heat``), both with the
named credential, if any, as ``X-Auth-Token``. ``workflow:<name>``: run a
local workflow of HTTP steps (``workflow_run``) with that credential on
every step. Anything else is a final
``invalid_request`` (the API refuses such subscribers, so this only meets
rows written by something else).
"""

from __future__ import annotations

import dataclasses
import re
import ssl

from queues.models import DeliveryJob, Subscription
from subscriptions import heat, mailto, mistral, webhook, workflow_run
from subscriptions import result as r
from subscriptions.apicall import Endpoint, base_url
from subscriptions.cooldown import Cooldowns
from subscriptions.credentials import OPTION as CREDENTIAL_OPTION
from subscriptions.credentials import Credentials
from subscriptions.errors import InvalidSubscriberOptions
from subscriptions.http import Client
from subscriptions.result import DeliveryResult
from subscriptions.workflows import SCHEME as WORKFLOW_SCHEME
from subscriptions.workflows import Workflows

# A token sent as X-Auth-Token: visible ASCII only (checked without echoing it).
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")


@dataclasses.dataclass(frozen=True)
class Limits:
    max_response_bytes: int = webhook.DEFAULT_MAX_RESPONSE_BYTES
    deadline: float = 30.0


class Channels:
    """Everything a delivery needs besides the job: clients, secrets, the
    local workflows and the Heat cooldowns of this dispatcher process."""

    def __init__(self, client: Client, smtp: mailto.SmtpSettings,
                 credentials: Credentials, limits: Limits = Limits(),
                 smtp_ssl: ssl.SSLContext | None = None,
                 cooldowns: Cooldowns | None = None,
                 workflows: Workflows | None = None) -> None:
        self._client = client
        self._smtp = smtp
        self._credentials = credentials
        self._limits = limits
        self._smtp_ssl = smtp_ssl
        self._heat = heat.HeatActions(cooldowns)
        self._workflows = workflows if workflows is not None else Workflows()
        self._runtime = workflow_run.Runtime(client, credentials,
                                             limits.max_response_bytes, limits.deadline)

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
        if scheme in mistral.SCHEMES:
            endpoint = self._endpoint(subscription, mistral.PREFIX)
            if isinstance(endpoint, DeliveryResult):
                return endpoint
            return await mistral.deliver(endpoint, subscription, job)
        if scheme in heat.SCHEMES:
            endpoint = self._endpoint(subscription, heat.PREFIX)
            if isinstance(endpoint, DeliveryResult):
                return endpoint
            return await self._heat.deliver(endpoint, subscription, job, now)
        if scheme == WORKFLOW_SCHEME:
            return await workflow_run.deliver(self._runtime, self._workflows,
                                              subscription, job)
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
        token = self._credentials.token_for(
            name, webhook.target_url(subscription.subscriber), subscription.project)
        if token is None:
            return _missing_credential(name)
        return await self._webhook(subscription, job, now, {"X-Auth-Token": token})

    def _endpoint(self, subscription: Subscription, prefix: str
                  ) -> Endpoint | DeliveryResult:
        """Where an action subscriber is called, with its named credential
        when it names one; a final ``invalid_request`` result otherwise."""
        try:
            base = base_url(subscription.subscriber, prefix)
        except InvalidSubscriberOptions as ex:
            return DeliveryResult(error=r.INVALID_REQUEST, detail=ex.description)
        name = subscription.options.get(CREDENTIAL_OPTION)
        token = None
        if name is not None:
            token = self._credentials.token_for(name, base, subscription.project)
            if token is None:
                return _missing_credential(name)
            if not _HEADER_TOKEN.fullmatch(token):
                return DeliveryResult(
                    error=r.INVALID_REQUEST,
                    detail=f"credential {name!r} is not a valid header value")
        return Endpoint(self._client, base, token,
                        self._limits.max_response_bytes, self._limits.deadline)


def _missing_credential(name: object) -> DeliveryResult:
    return DeliveryResult(
        error=r.INVALID_REQUEST,
        detail=f"credential {name!r} is not configured on this dispatcher for"
               " this destination and project")
