"""Request checks in Zaqar's order (zaqar-v2-api.md §1.2).

Order matters because it decides which error a malformed request gets:

1. ``RequestId`` — every response carries ``x-openstack-request-id``.
2. ``SignedAccess`` (``api/signed.py``) — a token, if present, must verify
   (Zaqar form: 404 on any failure, as Zaqar; Mailslot tokens: uniform 401);
   it then replaces the project and roles.
3. ``ZaqarChecks.process_resource`` — only for routed requests (unknown
   routes answer a bare 404 first), in this order: form-encoded body → 400,
   ``Accept`` → 406, ``Client-ID`` → 400, project header → 400, queue name
   and project length → 400.
4. Per-responder policy (``require_admin``), then the responder.
"""

from __future__ import annotations

import uuid

import falcon

from queues.config import TransportSettings
from queues.errors import Forbidden, InvalidHeader, InvalidQueueName, NotAcceptable
from queues.validation import valid_queue_name, valid_project

FORM_TYPE = "application/x-www-form-urlencoded"
PROJECT_HEADERS = ("X-PROJECT-ID", "X-TENANT-ID", "X-TENANT")


class RequestId:
    async def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = f"req-{uuid.uuid4()}"
        resp.set_header("x-openstack-request-id", req.context.request_id)


class ZaqarChecks:
    def __init__(self, transport: TransportSettings) -> None:
        self._transport = transport

    async def process_resource(self, req: falcon.Request, resp: falcon.Response,
                               resource: object, params: dict) -> None:
        if resource is None or req.path == "/":
            return
        _check_content_type(req)
        _check_accept(req)
        token = getattr(req.context, "token", None)
        if token is not None and token.kind == "signed":
            # A Mailslot token replaces the project and roles; Client-ID is
            # optional (a plain curl of the minted URL must work).
            client_id = req.get_header("Client-ID")
            req.context.client_id = (self._client_id(req) if client_id is not None
                                     else token.client_id)
            req.context.project = token.project
            req.context.roles = frozenset()
        else:
            req.context.client_id = self._client_id(req)
            req.context.project = _project(req)
            req.context.roles = frozenset() if token is not None else _roles(req)
        if "queue_name" in params:
            if not (valid_queue_name(params["queue_name"])
                    and valid_project(req.context.project)):
                raise InvalidQueueName()

    def _client_id(self, req: falcon.Request) -> str:
        value = req.get_header("Client-ID")
        if value is None:
            raise InvalidHeader("Missing header value",
                                'The "Client-Id" header is required.')
        if self._transport.client_id_uuid_safe == "strict":
            try:
                uuid.UUID(value)
            except ValueError:
                raise InvalidHeader("Wrong UUID value",
                                    "Malformed hexadecimal UUID.") from None
            return value
        low, high = (self._transport.min_length_client_id,
                     self._transport.max_length_client_id)
        if not low <= len(value) <= high:
            message = (f"Length of client id must be at least {low} and no "
                       f"greater than {high}.")
            raise InvalidHeader(message, message)
        return value


def _check_content_type(req: falcon.Request) -> None:
    if req.content_length is not None and (req.content_type or "").lower() == FORM_TYPE:
        raise InvalidHeader(
            "Invalid Content-Type",
            "Endpoint does not accept `application/x-www-form-urlencoded` content;"
            " currently supported media type is `application/json`; specify proper"
            ' client-side media type with the "Content-Type" header.')


def _check_accept(req: falcon.Request) -> None:
    if not req.client_accepts_json:
        raise NotAcceptable(
            "Endpoint only serves `application/json`; specify client-side media"
            ' type support with the "Accept" header.')


def _project(req: falcon.Request) -> str:
    for header in PROJECT_HEADERS:
        value = req.get_header(header)
        if value is not None:
            break
    if value is None:
        raise InvalidHeader("Project-Id Missing", "The header X-PROJECT-ID was missing")
    if value == "":
        raise InvalidHeader(
            "Empty project header not allowed",
            "X-PROJECT-ID cannot be an empty string. Specify the right header"
            " X-PROJECT-ID and retry.")
    return value


def _roles(req: falcon.Request) -> frozenset[str]:
    value = req.get_header("X-Roles") or ""
    return frozenset(role.strip() for role in value.split(",") if role.strip())


async def require_admin(req: falcon.Request, resp: falcon.Response,
                        resource: object, params: dict) -> None:
    """A falcon ``before`` hook: the ``admin`` role is required."""
    if "admin" not in req.context.roles:
        raise Forbidden()


async def refuse_tokens(req: falcon.Request, resp: falcon.Response,
                        resource: object, params: dict) -> None:
    """A falcon ``before`` hook: only account holders, never a token."""
    if getattr(req.context, "token", None) is not None:
        raise Forbidden()
