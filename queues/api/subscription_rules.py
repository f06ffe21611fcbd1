"""Validation of subscription bodies: Zaqar's rules and messages, then ours.

Zaqar's (zaqar-v2-api.md §2.5, its ``validation.subscription_posting`` and
``subscription_patching``): ``subscriber`` present with a scheme from
``transport.subscriber_types``; ``options`` a dict with a valid
``_retry_policy``; ``ttl`` an integer of at least 60 whose expiry fits in a
datetime. A ``null`` ``ttl`` or ``options`` means "not given", as in Zaqar.

Mailslot's, because the dispatcher will act on what is stored here:
``post_headers`` must make valid headers and ``post_data`` be a string; an
http(s) or trust+ subscriber is checked by the SSRF guard (scheme, port and
IP literals only: host names are resolved at delivery time); a ``mailto:``
subscriber must parse; ``mistral+``/``heat+``/``workflow:`` options are
checked by ``subscriptions.actions`` (a ``workflow:<name>`` must name a
workflow in ``dispatch.workflows_dir``, and every step URL passes the SSRF
guard); a trust+ subscriber names a configured credential in
``options.credentials`` (mistral+/heat+/workflow: ones may, and the credential
must be bound to every URL they call; no other subscriber may, so a token
cannot be sent to a plain webhook by mistake).
"""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
from typing import Any

from queues.config import Settings
from queues.errors import InvalidInput, SubscriptionNotUpdated
from subscriptions import actions, mailto, webhook
from subscriptions.credentials import OPTION as CREDENTIAL_OPTION
from subscriptions.credentials import Credentials, load_credentials
from subscriptions.errors import BlockedDestination
from subscriptions.retry import RETRY_POLICY, parse_retry_policy
from subscriptions.service import guard_for
from subscriptions.ssrf import Guard
from subscriptions.workflows import Workflows, load_workflows

MIN_TTL = 60
WEBHOOK_SCHEMES = ("http", "https", "trust+http", "trust+https")


@dataclasses.dataclass(frozen=True)
class Changes:
    """Validated fields of a create or update; None means "not given"."""

    subscriber: str | None = None
    ttl: int | None = None
    options: dict[str, Any] | None = None


def scheme_of(subscriber: str) -> str:
    return subscriber.partition(":")[0].lower()


class SubscriptionRules:
    """Built once per app: the SSRF guard, the credential names and the
    local workflows."""

    def __init__(self, settings: Settings, credentials: Credentials | None = None,
                 workflows: Workflows | None = None) -> None:
        self._types = settings.transport.subscriber_types
        self._default_ttl = settings.transport.default_subscription_ttl
        self._https_only = settings.dispatch.https_only
        self._guard: Guard = guard_for(settings)
        self._credentials = (credentials if credentials is not None
                             else load_credentials(settings.dispatch.credentials_file))
        self._workflows = (workflows if workflows is not None
                           else load_workflows(settings.dispatch.workflows_dir))

    def for_create(self, document: Any, now: float, project: str) -> Changes:
        """A POST body; raises ``InvalidInput`` with Zaqar's messages."""
        if not isinstance(document, dict):
            raise InvalidInput("Subscriptions must be a dict.")
        if "subscriber" not in document:
            raise InvalidInput("Missing parameter subscriber in body.")
        subscriber = self._subscriber(document["subscriber"])
        ttl, options = _ttl_and_options(document, now)
        options = {} if options is None else options
        self.check_destination(subscriber, options, project)
        return Changes(subscriber, self._default_ttl if ttl is None else ttl, options)

    def for_update(self, document: Any, subscription_id: str, now: float) -> Changes:
        """A PATCH body (the destination is checked by the caller, against the
        stored subscription it changes)."""
        if not document:
            raise InvalidInput("No subscription to create.")
        if not isinstance(document, dict):
            raise InvalidInput("Subscriptions must be a dict.")
        subscriber = document.get("subscriber")
        if subscriber is not None:
            self._subscriber(subscriber)
        changes = Changes(subscriber, *_ttl_and_options(document, now))
        if changes == Changes():
            raise SubscriptionNotUpdated(subscription_id)
        return changes

    def _subscriber(self, subscriber: Any) -> str:
        unsupported = InvalidInput(
            "The subscriber type of subscription must be supported in the list"
            f" {list(self._types)}.")
        if not isinstance(subscriber, str) or not subscriber:
            raise unsupported
        try:
            scheme = urllib.parse.urlsplit(subscriber).scheme
        except ValueError:
            raise InvalidInput("The subscriber is not a valid URI.") from None
        if scheme not in self._types:
            raise unsupported
        return subscriber

    def check_destination(self, subscriber: str, options: dict[str, Any],
                          project: str) -> None:
        """Where the dispatcher would deliver, and with which credential."""
        scheme = scheme_of(subscriber)
        if scheme in WEBHOOK_SCHEMES:
            self._check_url(webhook.target_url(subscriber))
        elif actions.is_action_subscriber(subscriber):
            actions.validate_subscriber_options(subscriber, options, self._workflows)
            for url in actions.target_urls(subscriber, options, self._workflows):
                self._check_url(url)
        elif scheme == "mailto":
            try:
                mailto.parse_mailto(subscriber)
            except mailto.InvalidMail as ex:
                raise InvalidInput(f"Invalid mailto subscriber: {ex}.") from None
        self._check_credential(subscriber, scheme, options, project)

    def _check_url(self, url: str) -> None:
        if self._https_only and not url.lower().startswith("https:"):
            raise InvalidInput("Only https subscribers are allowed on this server.")
        try:
            self._guard.check_url(url)
        except BlockedDestination as ex:
            if ex.reason == "invalid-url":
                raise InvalidInput("The subscriber is not a valid URL.") from None
            raise  # an InvalidInput: "Destination ... is not allowed: loopback."

    def _check_credential(self, subscriber: str, scheme: str,
                          options: dict[str, Any], project: str) -> None:
        """trust+ subscribers must name a configured credential; mistral+,
        heat+ and workflow: ones may (bound to every URL they call); no other
        subscriber may (a token must never go to a plain webhook or a
        mailbox)."""
        name = options.get(CREDENTIAL_OPTION)
        required = scheme.startswith("trust+")
        if not (required or actions.is_action_subscriber(subscriber)):
            if CREDENTIAL_OPTION in options:
                raise InvalidInput(f"options.{CREDENTIAL_OPTION} is not used by"
                                   f" {scheme} subscribers.")
            return
        if name is None:
            if required:
                raise InvalidInput(
                    f"A {scheme} subscriber needs options.{CREDENTIAL_OPTION}: the"
                    " name of a credential configured on the server.")
            return
        destinations = ([webhook.target_url(subscriber)] if required else
                        actions.target_urls(subscriber, options, self._workflows))
        if not destinations or any(
                self._credentials.token_for(name, url, project) is None
                for url in destinations):
            raise InvalidInput(f"options.{CREDENTIAL_OPTION} names no credential"
                               " configured on the server for this destination"
                               " and project.")


def _ttl_and_options(document: dict[str, Any], now: float
                     ) -> tuple[int | None, dict[str, Any] | None]:
    """``options`` then ``ttl`` (Zaqar's order); None when absent or null."""
    options = document.get("options")
    if options is not None:
        check_options(options)
    ttl = document.get("ttl")
    if ttl is not None:
        check_ttl(ttl, now)
    return ttl, options


def check_options(options: Any) -> None:
    """Zaqar's ``options`` rules, plus what the webhook sender needs."""
    if not isinstance(options, dict):
        raise InvalidInput("Options must be a dict.")
    if RETRY_POLICY in options:
        parse_retry_policy(options[RETRY_POLICY])  # InvalidRetryPolicy: 400
    try:
        webhook._post_headers(options.get("post_headers"))
    except webhook.InvalidRequest as ex:
        raise InvalidInput(f"{ex}.") from None
    if "post_data" in options and not isinstance(options["post_data"], str):
        raise InvalidInput("post_data must be a string.")


def check_ttl(ttl: Any, now: float) -> None:
    """Zaqar's: an integer, at least 60, and now + ttl must be a datetime."""
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidInput("TTL must be an integer.")
    if ttl < MIN_TTL:
        raise InvalidInput("The TTL for a subscription must be at least"
                           f" {MIN_TTL} seconds long.")
    start = datetime.datetime.fromtimestamp(int(now), datetime.timezone.utc)
    try:
        start.replace(tzinfo=None) + datetime.timedelta(seconds=ttl)
    except OverflowError:
        raise InvalidInput("The TTL seconds for a subscription plus current time"
                           f" must be less than {datetime.datetime.max}.") from None
