"""Grant operations of a template: Mailslot's names, or Zaqar's paths+methods.

The (path, method) table is the one ``POST /v2/queues/{q}/share`` applies
(``queues.api.resources.share``), repeated here so this package does not
import the API; a unit test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Iterable

OPERATIONS = frozenset({"read", "post", "claim", "delete"})
GRANTABLE_PATHS = frozenset({"messages", "claims"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
# (path, HTTP method) -> operation, as share.py maps them.
PATH_METHOD_OPS = {
    ("messages", "GET"): "read", ("messages", "HEAD"): "read",
    ("messages", "POST"): "post", ("messages", "DELETE"): "delete",
    ("claims", "POST"): "claim", ("claims", "GET"): "claim",
    ("claims", "PATCH"): "claim", ("claims", "DELETE"): "claim",
}


def ops_from_paths(paths: Iterable[str], methods: Iterable[str]) -> tuple[str, ...]:
    """The sorted operations ``paths`` x ``methods`` grant (maybe none)."""
    methods = list(methods)
    return tuple(sorted({PATH_METHOD_OPS[(p, m)] for p in paths for m in methods
                         if (p, m) in PATH_METHOD_OPS}))
