"""Does a verified grant allow this request? One function for every transport.

Compare the grant with the router's *parsed* parameters, never with path
strings: exact, case-sensitive equality on project and queue (Zaqar's
``re.search`` let a grant for ``a.b`` open ``aXb``), membership of the
route's operation, and, when the grant is bound to networks, the client IP.
"""

from __future__ import annotations

from signing.errors import CIDR
from signing.errors import SCOPE
from signing.errors import InvalidToken
from signing.grants import Grant
from signing.grants import Operation
from signing.network import ip_in_cidrs


def authorize(
    grant: Grant,
    project: str,
    queue: str,
    operation: Operation | str,
    client_ip: str | None = None,
) -> None:
    """Raise InvalidToken (``scope`` or ``cidr``) unless the grant covers the request.

    ``client_ip`` is the address the caller trusts (the peer, or the nearest
    untrusted ``X-Forwarded-For`` hop behind configured proxies). If the grant
    has CIDRs and no usable address is given, the request is refused.
    """
    if type(project) is not str or project != grant.project:
        raise InvalidToken(SCOPE)
    if type(queue) is not str or queue != grant.queue:
        raise InvalidToken(SCOPE)
    if not _operation_granted(grant, operation):
        raise InvalidToken(SCOPE)
    if grant.cidrs and (client_ip is None or not ip_in_cidrs(client_ip, grant.cidrs)):
        raise InvalidToken(CIDR)


_OPERATIONS = {operation.value: operation for operation in Operation}


def _operation_granted(grant: Grant, operation: object) -> bool:
    # A dict lookup, not Operation(operation): enum construction is slow and
    # this runs on every signed request.
    if not isinstance(operation, str):
        return False
    known = _OPERATIONS.get(str(operation))
    return known is not None and known in grant.ops
