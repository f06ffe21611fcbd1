"""Map the ``queues.errors`` hierarchy to HTTP, once, for the whole app.

Bodies are Zaqar's ``{"title", "description"}``. Unexpected exceptions are
logged with the request id and answered with a generic 500: never a stack
trace, an exception text or a secret.
"""

from __future__ import annotations

import logging

import falcon
import falcon.asgi

from queues import errors

LOG = logging.getLogger("mailslot.api")

# (error class, HTTP status, Zaqar title); most specific classes first.
ERROR_TABLE: list[tuple[type[errors.MailslotError], str, str]] = [
    (errors.InvalidQueueName, falcon.HTTP_400, "Invalid queue identification"),
    (errors.InvalidBody, falcon.HTTP_400, "Invalid request body"),
    (errors.InvalidParameter, falcon.HTTP_400, "Invalid parameter"),
    (errors.SubscriptionNotUpdated, falcon.HTTP_400, "Unable to update subscription"),
    (errors.InvalidInput, falcon.HTTP_400, "Invalid API request"),
    (errors.UnsupportedMediaType, falcon.HTTP_415, "415 Unsupported Media Type"),
    (errors.NotAcceptable, falcon.HTTP_406, "406 Not Acceptable"),
    (errors.Forbidden, falcon.HTTP_403, "Not authorized"),
    (errors.NotFound, falcon.HTTP_404, "Not found"),
    (errors.Conflict, falcon.HTTP_409, "Resource conflict"),
    (errors.MessageIsClaimed, falcon.HTTP_403, "Unable to delete"),
    (errors.UnableToDelete, falcon.HTTP_400, "Unable to delete"),
    (errors.StorageUnavailable, falcon.HTTP_503, "Service temporarily unavailable"),
    (errors.NotSupported, falcon.HTTP_503, "Service unavailable"),
    (errors.TokenRefused, falcon.HTTP_401, "Unauthorized"),
    (errors.SignatureRejected, falcon.HTTP_404, "404 Not Found"),
    (errors.TooManyRequests, falcon.HTTP_429, "Too many requests"),
]


def _handler(status: str, title: str):
    async def handle(req, resp, ex, params) -> None:
        if isinstance(ex, errors.StorageUnavailable):
            LOG.warning("storage unavailable: %s (request %s)", ex.description,
                        getattr(req.context, "request_id", "-"))
            resp.set_header("Retry-After", "1")
        if isinstance(ex, errors.TooManyRequests):
            resp.set_header("Retry-After", "60")
        raise falcon.HTTPError(status, title=getattr(ex, "title", title),
                               description=ex.description or None)

    return handle


async def _unexpected(req, resp, ex, params) -> None:
    if isinstance(ex, falcon.HTTPError):
        raise ex
    LOG.exception("unexpected error (request %s)",
                  getattr(req.context, "request_id", "-"))
    raise falcon.HTTPInternalServerError(
        title="Internal server error",
        description="The server could not complete the request.",
    )


def install_error_handlers(app: falcon.asgi.App) -> None:
    app.add_error_handler(Exception, _unexpected)
    for cls, status, title in ERROR_TABLE:
        app.add_error_handler(cls, _handler(status, title))
