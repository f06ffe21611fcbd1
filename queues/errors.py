"""The one exception hierarchy of Mailslot.

Storage drivers raise these, the API raises them while validating, and
``queues.api.errors`` maps each class to an HTTP status and a Zaqar title once.
Descriptions are written for API clients: they never contain secrets, tokens or
stack traces.
"""

from __future__ import annotations


class MailslotError(Exception):
    """Base class of every error Mailslot raises on purpose."""

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description


# --- client mistakes (400) -------------------------------------------------


class InvalidInput(MailslotError):
    """A request Zaqar answers with 400 "Invalid API request"."""


class InvalidBody(InvalidInput):
    """A body Zaqar answers with 400 "Invalid request body"."""


class InvalidParameter(InvalidInput):
    """A query parameter Zaqar answers with 400 "Invalid parameter"."""


class InvalidHeader(InvalidInput):
    """A header problem; carries its own Zaqar title (e.g. "Missing header value")."""

    def __init__(self, title: str, description: str) -> None:
        super().__init__(description)
        self.title = title


class SubscriptionNotUpdated(InvalidInput):
    """400 "Unable to update subscription": a PATCH that names nothing to change."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"Subscription {subscription_id} could not be updated.")


class InvalidQueueName(InvalidInput):
    """Queue name or project id fails Zaqar's format rules."""

    def __init__(self) -> None:
        super().__init__(
            "The format of the submitted queue name or project id is not valid."
        )


class UnsupportedMediaType(MailslotError):
    """415: e.g. a queue PATCH without the json-patch content type."""


class NotAcceptable(MailslotError):
    """406: the client does not accept application/json."""


class Forbidden(MailslotError):
    """403 "Not authorized": a policy (role) check failed."""

    def __init__(self) -> None:
        super().__init__("You are not authorized to complete this action.")


# --- signed URLs ----------------------------------------------------------


class TokenRefused(MailslotError):
    """401: a Mailslot token did not authorise this request.

    One uniform description whatever check failed; the reason goes to the
    audit log only.
    """

    def __init__(self) -> None:
        super().__init__("The signed URL is not valid for this request.")


class SignatureRejected(MailslotError):
    """404: a Zaqar-form ``URL-Signature`` request failed verification (as
    Zaqar answers it)."""


class TooManyRequests(MailslotError):
    """429: a token exceeded its request rate."""


# --- missing things (404) --------------------------------------------------


class NotFound(MailslotError):
    """Something the request names does not exist."""


class QueueNotFound(NotFound):
    def __init__(self, project: str, queue: str) -> None:
        super().__init__(f"Queue {queue} does not exist for project {project}")


class MessageNotFound(NotFound):
    def __init__(self, project: str, queue: str, message_id: str) -> None:
        super().__init__(
            f"Message {message_id} does not exist in queue {queue} "
            f"for project {project}"
        )


class MessagesNotFound(NotFound):
    def __init__(self, project: str, queue: str, ids: list[str]) -> None:
        super().__init__(
            f"No messages with IDs: {ids!r} found in the queue {queue} "
            f"for project {project}."
        )


class ClaimNotFound(NotFound):
    def __init__(self, project: str, queue: str, claim_id: str) -> None:
        super().__init__(
            f"Claim {claim_id} does not exist in queue {queue} for project {project}"
        )


class SubscriptionNotFound(NotFound):
    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"Subscription {subscription_id} does not exist")


# --- conflicts -------------------------------------------------------------


class Conflict(MailslotError):
    """409 "Resource conflict"."""


# --- message delete rules ("Unable to delete") -----------------------------


class UnableToDelete(MailslotError):
    """Base of the claim-related delete refusals."""


class MessageIsClaimed(UnableToDelete):
    """403: the message holds a live claim the caller did not present."""

    def __init__(self) -> None:
        super().__init__(
            "This message is claimed; it cannot be deleted without a valid claim ID."
        )


class MessageNotClaimed(UnableToDelete):
    """400: a claim id was given but the message is not claimed."""

    def __init__(self) -> None:
        super().__init__(
            "A claim was specified, but the message is not currently claimed."
        )


class ClaimExpired(UnableToDelete):
    """400: the claim id given is unknown, malformed or expired."""

    def __init__(self) -> None:
        super().__init__("The specified claim does not exist or has expired.")


# --- the service itself ----------------------------------------------------


class StorageUnavailable(MailslotError):
    """503: the store cannot be reached or failed; safe to retry."""


class NotSupported(MailslotError):
    """503: the store, as deployed, cannot provide this feature (e.g.
    subscriptions on a standalone MongoDB server, which has no transactions).
    Unlike ``StorageUnavailable`` a retry does not help: the deployment must
    change."""


class ConfigError(MailslotError):
    """The configuration is invalid (raised at start-up, never per request)."""
