"""authorize(): exact scope, operation membership, client networks."""

from __future__ import annotations

import pytest

from signing import Grant
from signing import GrantError
from signing import InvalidToken
from signing import Operation
from signing import authorize
from signing.network import normalise_cidrs

NOW = 1_700_000_000


def grant(
    project: str = "proj1",
    queue: str = "a.b",
    ops: tuple[str, ...] = ("read", "post"),
    cidrs: tuple[str, ...] = (),
) -> Grant:
    return Grant(
        project=project,
        queue=queue,
        ops=frozenset(Operation(op) for op in ops),
        iat=NOW,
        exp=NOW + 60,
        jti="AAAAAAAAAAAAAAAAAAAAAA",
        kid="k1",
        cidrs=normalise_cidrs(cidrs),
    )


def refused(reason: str, *args, **kwargs) -> None:
    with pytest.raises(InvalidToken) as info:
        authorize(*args, **kwargs)
    assert info.value.reason == reason


def test_exact_match_allows():
    authorize(grant(), "proj1", "a.b", "read")
    authorize(grant(), "proj1", "a.b", Operation.POST)


@pytest.mark.parametrize(
    "queue",
    ["aXb", "a_b", "a.bc", "a.b/../c", "xa.b", "A.B", "a.b ", "a.b/", "a", "", "a\\.b"],
)
def test_queue_must_match_exactly(queue):
    refused("scope", grant(), "proj1", queue, "read")


@pytest.mark.parametrize("project", ["proj2", "PROJ1", "proj", "proj1 ", "", None])
def test_project_must_match_exactly(project):
    refused("scope", grant(), project, "a.b", "read")


def test_non_string_queue_refused():
    refused("scope", grant(), "proj1", None, "read")


@pytest.mark.parametrize("operation", ["delete", "claim", "purge", "READ", "", None])
def test_operation_must_be_granted(operation):
    refused("scope", grant(ops=("read", "post")), "proj1", "a.b", operation)


def test_cidr_inside_and_outside():
    bound = grant(cidrs=("10.0.0.0/8", "2001:db8::/32"))
    authorize(bound, "proj1", "a.b", "read", client_ip="10.20.30.40")
    authorize(bound, "proj1", "a.b", "read", client_ip="2001:db8:1::7")
    for outside in ("11.0.0.1", "192.168.1.1", "2001:db9::1", "::1"):
        refused("cidr", bound, "proj1", "a.b", "read", client_ip=outside)


def test_ipv4_mapped_ipv6_client_matches_ipv4_network():
    bound = grant(cidrs=("10.0.0.0/8",))
    authorize(bound, "proj1", "a.b", "read", client_ip="::ffff:10.1.2.3")
    refused("cidr", bound, "proj1", "a.b", "read", client_ip="::ffff:11.1.2.3")


def test_ipv4_mapped_network_is_stored_as_ipv4():
    bound = grant(cidrs=("::ffff:10.0.0.0/104",))
    assert bound.cidrs == ("10.0.0.0/8",)
    authorize(bound, "proj1", "a.b", "read", client_ip="10.9.9.9")


@pytest.mark.parametrize(
    "client_ip", [None, "", "not-an-ip", "10.0.0.1/32", "fe80::1%eth0"]
)
def test_bound_grant_refuses_missing_or_garbage_address(client_ip):
    bound = grant(cidrs=("10.0.0.0/8", "fe80::/64"))
    refused("cidr", bound, "proj1", "a.b", "read", client_ip=client_ip)


def test_unbound_grant_ignores_address():
    authorize(grant(), "proj1", "a.b", "read", client_ip="garbage")
    authorize(grant(), "proj1", "a.b", "read")


def test_scope_checked_before_network():
    bound = grant(cidrs=("10.0.0.0/8",))
    refused("scope", bound, "proj1", "aXb", "read", client_ip="10.0.0.1")


# --- CIDR normalisation at mint ---------------------------------------------


@pytest.mark.parametrize(
    "cidr",
    [
        "0.0.0.0/0",
        "::/0",
        "10.0.0.0/7",
        "2000::/3",
        "2001:db8::/31",
        "::ffff:0:0/96",
        "10.0.0.1/8",
        "10.0.0.0/33",
        "010.0.0.0/8",
        "example.com",
        "",
    ],
)
def test_unusable_cidrs_refused(cidr):
    with pytest.raises(GrantError):
        normalise_cidrs([cidr])


def test_cidr_list_limits_and_types():
    nine = [f"10.{n}.0.0/16" for n in range(9)]
    with pytest.raises(GrantError, match="at most 8"):
        normalise_cidrs(nine)
    assert len(normalise_cidrs(nine[:8])) == 8
    with pytest.raises(GrantError):
        normalise_cidrs("10.0.0.0/8")
    with pytest.raises(GrantError):
        normalise_cidrs([167772160])


def test_cidrs_normalised_sorted_and_deduplicated():
    result = normalise_cidrs(
        [
            "2001:DB8::/32",
            "192.168.1.0/24",
            "10.0.0.0/8",
            "10.0.0.0/8",
            "::ffff:172.16.0.0/108",
            "203.0.113.7",
        ]
    )
    assert result == (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.1.0/24",
        "203.0.113.7/32",
        "2001:db8::/32",
    )
