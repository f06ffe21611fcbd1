"""The SSRF guard: one test per blocked address class, odd IP spellings,
embedded IPv4 forms, the allow-list, schemes and ports, and resolve-once."""

from __future__ import annotations

import ipaddress

import pytest

from queues.errors import ConfigError, InvalidInput
from subscriptions.errors import BlockedDestination, ResolutionFailed
from subscriptions.ssrf import (
    Guard, SsrfPolicy, blocked_reason, parse_ip_host, system_resolver,
)
from tests.unit.subscriptions.conftest import static_resolver

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

BLOCKED = [
    # (address, reason)
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("100.100.100.200", "metadata"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.255", "cgnat"),
    ("0.0.0.0", "this-network"),
    ("0.1.2.3", "this-network"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "ietf-protocol"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4-relay"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fd00:ec2::254", "metadata"),
    ("fd00:ec2::23", "metadata"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("100::1", "discard"),
    ("64:ff9b:1::1", "nat64-local"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "ietf-protocol"),
    ("4000::1", "reserved"),
    ("5f00::1", "reserved"),
    # IPv4 embedded in IPv6 is judged by the IPv4.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:0:0", "this-network"),
    ("::127.0.0.1", "loopback"),            # IPv4-compatible
    ("::10.0.0.1", "private"),
    ("64:ff9b::127.0.0.1", "loopback"),     # NAT64
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("64:ff9b::192.168.0.1", "private"),
    ("2002:7f00:1::1", "loopback"),         # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "metadata"),
    ("2002:c0a8:101::1", "private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
]

ALLOWED = [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "2606:4700::1111",
           "64:ff9b::808:808", "::ffff:8.8.8.8", "2002:808:808::1",
           "100.63.255.255", "100.128.0.0", "172.32.0.1", "11.0.0.1"]


@pytest.mark.parametrize("address, reason", BLOCKED)
def test_blocked_address_classes(address, reason):
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address, reason", BLOCKED)
async def test_blocked_when_a_name_resolves_to_it(address, reason):
    resolver = static_resolver([address])
    with pytest.raises(BlockedDestination) as info:
        await Guard(resolver=resolver).resolve("hooks.example.com", 443)
    assert info.value.reason == reason
    assert isinstance(info.value, InvalidInput)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


# --- odd spellings of IP literals ---------------------------------------------


@pytest.mark.parametrize("host, ip", [
    ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7F000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"),
    ("10.0x10.1", "10.16.0.1"),
    ("169.254.43518", "169.254.169.254"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("[::1]", "::1"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("[0:0:0:0:0:ffff:7f00:1]", "::ffff:127.0.0.1"),
])
def test_odd_spellings_are_ips(host, ip):
    assert parse_ip_host(host) == ipaddress.ip_address(ip)


@pytest.mark.parametrize("host", [
    "example.com", "256.0.0.1", "1.2.3.4.5", "08.0.0.1", "0x1g.0.0.1",
    "1_0.0.0.1", "+1.0.0.1", " 127.0.0.1", "127.0.0.1..", "", "١٢٧.٠.٠.١",
    "[not:an:ip]", "4294967296",
])
def test_names_that_are_not_ips(host):
    assert parse_ip_host(host) is None


@pytest.mark.parametrize("url, reason", [
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://[::1]:8080/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "metadata"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://0xa9fea9fe/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://10.0.0.1/", "private"),
    ("http://100.64.1.1/", "cgnat"),
    ("http://0.0.0.0:80/", "this-network"),
    ("http://user:pw@127.0.0.1/", "loopback"),
])
async def test_literal_urls_are_blocked_without_dns(url, reason):
    resolver = static_resolver(["8.8.8.8"])
    guard = Guard(resolver=resolver)
    with pytest.raises(BlockedDestination) as info:
        target = guard.check_url(url)
        await guard.resolve(target.host, target.port)
    assert info.value.reason == reason
    assert resolver.calls == []


async def test_literal_public_ip_does_not_ask_the_resolver():
    resolver = static_resolver(["10.0.0.1"])
    guard = Guard(resolver=resolver)
    assert await guard.resolve("0x08080808", 80) == [ipaddress.ip_address("8.8.8.8")]
    assert resolver.calls == []


# --- resolve once, judge every answer ---------------------------------------


async def test_public_then_private_answer_is_blocked():
    """A name whose answer mixes a public and a private address (the
    rebinding shape): every address is judged, so the lot is refused."""
    resolver = static_resolver([PUBLIC_V4, "10.0.0.7"])
    with pytest.raises(BlockedDestination) as info:
        await Guard(resolver=resolver).resolve("rebind.example", 443)
    assert (info.value.reason, info.value.address) == ("private", "10.0.0.7")
    assert resolver.calls == [("rebind.example", 443)]


async def test_private_v6_behind_public_v4_is_blocked():
    resolver = static_resolver([PUBLIC_V4, PUBLIC_V6, "::ffff:192.168.0.1"])
    with pytest.raises(BlockedDestination, match="private"):
        await Guard(resolver=resolver).resolve("mixed.example", 80)


async def test_all_public_answers_are_returned_in_order_and_resolved_once():
    resolver = static_resolver([PUBLIC_V6, PUBLIC_V4], ["10.0.0.1"])
    got = await Guard(resolver=resolver).resolve("ok.example", 443)
    assert got == [ipaddress.ip_address(PUBLIC_V6), ipaddress.ip_address(PUBLIC_V4)]
    assert len(resolver.calls) == 1


async def test_mapped_answers_come_back_unmapped():
    resolver = static_resolver(["::ffff:8.8.8.8"])
    assert await Guard(resolver=resolver).resolve("m.example", 80) == [
        ipaddress.ip_address("8.8.8.8")]


async def test_no_answers_is_a_resolution_failure():
    with pytest.raises(ResolutionFailed):
        await Guard(resolver=static_resolver([])).resolve("empty.example", 80)


async def test_unparseable_answer_is_blocked():
    with pytest.raises(BlockedDestination, match="unparseable"):
        await Guard(resolver=static_resolver(["not-an-ip"])).resolve("x.example", 80)


async def test_system_resolver_localhost_is_blocked():
    guard = Guard()  # the real getaddrinfo
    with pytest.raises(BlockedDestination, match="loopback"):
        await guard.resolve("localhost", 80)


async def test_system_resolver_answers_strings():
    answers = await system_resolver("localhost", 80)
    assert answers and all(isinstance(a, str) for a in answers)
    assert len(answers) == len(set(answers))


# --- allow-list ----------------------------------------------------------------


@pytest.mark.parametrize("cidrs, address, allowed", [
    (["127.0.0.1/32"], "127.0.0.1", True),
    (["127.0.0.1/32"], "::ffff:127.0.0.1", True),
    (["127.0.0.1/32"], "127.0.0.2", False),
    (["127.0.0.1/32"], "::1", False),
    (["10.0.0.0/8"], "10.9.8.7", True),
    (["10.0.0.0/8"], "64:ff9b::a00:1", True),
    (["fd12::/16"], "fd12:3456::1", True),
    # Metadata stays closed whatever is allowed.
    (["169.254.0.0/16"], "169.254.169.254", False),
    (["169.254.0.0/16"], "169.254.1.1", True),
    (["0.0.0.0/0"], "169.254.169.254", False),
    (["0.0.0.0/0"], "::ffff:169.254.169.254", False),
    (["0.0.0.0/0", "::/0"], "64:ff9b::a9fe:a9fe", False),
    (["fd00::/8"], "fd00:ec2::254", False),
    (["::/0"], "fd00:ec2::254", False),
    (["0.0.0.0/0"], "100.100.100.200", False),
])
def test_allow_list(cidrs, address, allowed):
    policy = SsrfPolicy.from_config(cidrs)
    reason = blocked_reason(ipaddress.ip_address(address), policy.allow)
    assert (reason is None) is allowed


def test_production_default_allows_nothing_internal():
    assert SsrfPolicy().allow == ()
    with pytest.raises(BlockedDestination):
        Guard().check_url("http://127.0.0.1:8080/")


@pytest.mark.parametrize("cidrs", [
    ["127.0.0.1/8"], ["nonsense"], "127.0.0.1/32", [None],
])
def test_bad_allow_list_is_a_config_error(cidrs):
    with pytest.raises(ConfigError):
        SsrfPolicy.from_config(cidrs)


# --- schemes, ports and URL shape ------------------------------------------------


@pytest.mark.parametrize("url, reason", [
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com:70/", "scheme"),
    ("mailto:a@example.com", "scheme"),
    ("trust+http://example.com/", "scheme"),
    ("//example.com/", "scheme"),
    ("http:///path-only", "invalid-url"),
    ("http://example.com:99999/", "invalid-url"),
    ("http://[::1/", "invalid-url"),
])
def test_bad_urls(url, reason):
    with pytest.raises(BlockedDestination) as info:
        Guard().check_url(url)
    assert info.value.reason == reason


def test_check_url_parses_a_public_target():
    target = Guard().check_url("HTTPS://Hooks.Example.COM/x?y=1")
    assert (target.scheme, target.host, target.port, target.literal) == (
        "https", "hooks.example.com", 443, None)


def test_https_only():
    guard = Guard(SsrfPolicy(https_only=True))
    assert guard.check_url("https://example.com/").port == 443
    with pytest.raises(BlockedDestination, match="scheme"):
        guard.check_url("http://example.com/")


def test_port_restriction():
    guard = Guard(SsrfPolicy.from_config(ports=[443, 8443]))
    assert guard.check_url("https://example.com:8443/").port == 8443
    with pytest.raises(BlockedDestination, match="port"):
        guard.check_url("http://example.com/")
