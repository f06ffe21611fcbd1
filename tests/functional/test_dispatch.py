"""Push delivery end to end: ``mailslot serve`` (API + its dispatcher) on a
real store, subscribers that are real HTTP servers on 127.0.0.1.

Acceptance of the dispatcher issue: every (message, subscription) pair of a
1,000-message stream delivered at least once across a ``kill -9`` of the
dispatcher (duplicates counted and reported), and the confirmation flow with
a receiver that confirms through the signed URL it was sent.
"""

from __future__ import annotations

import collections
import os
import pathlib
import signal
import time
import uuid

import httpx
import pytest

import signing
from queues.storage import load_driver
from tests.fixtures.receiver import Delivery, receiver_factory  # noqa: F401
from tests.fixtures.server import MailslotServer, headers

MESSAGES = 1000
BATCH = 10
SUBSCRIBERS = 3
# Seconds for every pair to arrive. The MongoDB-wire test server (SecantusDB,
# Python) delivers ~20 pairs/s here, and the killed dispatcher's open
# transactions slow it further until it reaps them: 3,000 pairs took 154 s.
DRAIN_TIMEOUT = {"mongodb": 360}
DISPATCH = {"allow_cidrs": ["127.0.0.1/32"], "lease_seconds": 4.0,
            "delivery_deadline": 2.0, "connect_timeout": 1.0, "read_timeout": 1.0}


@pytest.fixture(autouse=True)
def _needs_outbox(store_uri):
    if not hasattr(load_driver(store_uri, timeout=1.0, namespace="probe"), "jobs"):
        pytest.skip("this store has no subscriptions yet")


def dispatcher_pids(server: MailslotServer) -> list[int]:
    found = []
    for pid in server.pids():
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"queues.cli" in cmdline and b"dispatch" in cmdline:
            found.append(pid)
    return found


def subscribe(http: httpx.Client, hdrs: dict, queue: str, url: str) -> str:
    response = http.post(f"/v2/queues/{queue}/subscriptions", headers=hdrs,
                         json={"subscriber": url, "ttl": 3600, "options": {}})
    assert response.status_code == 201, response.text
    return response.json()["subscription_id"]


def post_stream(http: httpx.Client, hdrs: dict, queue: str, start: int,
                count: int) -> list[str]:
    ids = []
    for first in range(start, start + count, BATCH):
        document = {"messages": [{"body": {"n": n}, "ttl": 3600}
                                 for n in range(first, first + BATCH)]}
        response = http.post(f"/v2/queues/{queue}/messages", headers=hdrs,
                             json=document)
        assert response.status_code == 201, response.text
        ids += [href.rsplit("/", 1)[-1] for href in response.json()["resources"]]
    return ids


def pairs(deliveries: list[Delivery]) -> collections.Counter:
    counted: collections.Counter = collections.Counter()
    for delivery in deliveries:
        payload = delivery.json()
        counted[(payload["subscription_id"], payload["message_id"])] += 1
    return counted


def test_every_pair_delivered_across_a_dispatcher_kill(
        store_name, killing_store_uri, mailslot_server_factory,
        receiver_factory):  # noqa: F811
    server = mailslot_server_factory(killing_store_uri, dispatch=True,
                                     settings={"dispatch": DISPATCH})
    receivers = [receiver_factory() for _ in range(SUBSCRIBERS)]
    hdrs = headers("dispatch")
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as http:
        subs = [subscribe(http, hdrs, "events", r.url) for r in receivers]
        ids = post_stream(http, hdrs, "events", 0, MESSAGES // 2)
        receivers[0].wait_for(lambda seen: len(seen) >= 50)
        [victim] = dispatcher_pids(server)
        os.kill(victim, signal.SIGKILL)
        ids += post_stream(http, hdrs, "events", MESSAGES // 2, MESSAGES // 2)
        expected = {(s, m) for s in subs for m in ids}
        for receiver, sub in zip(receivers, subs):
            receiver.wait_for(
                lambda seen, sub=sub: {p for p in pairs(seen) if p[0] == sub}
                >= {p for p in expected if p[0] == sub},
                timeout=DRAIN_TIMEOUT.get(store_name, 120))
    assert dispatcher_pids(server) and victim not in dispatcher_pids(server)
    counted = sum((pairs(r.snapshot()) for r in receivers), collections.Counter())
    assert set(counted) == expected, "a delivery went to the wrong place"
    duplicates = sum(n - 1 for n in counted.values())
    print(f"\n{len(expected)} (message, subscription) pairs delivered, "
          f"{duplicates} duplicate deliveries after kill -9 of the dispatcher")


def confirm_through_signed_url(client: httpx.Client):
    """A receiver's answer: confirm with exactly what the confirmation carries."""

    def answer(delivery: Delivery) -> tuple[int, bytes]:
        payload = delivery.json()
        if payload.get("Message_Type") == "SubscriptionConfirmation":
            signed = {k: payload[k] for k in ("URL-Signature", "URL-Methods",
                                              "URL-Paths", "URL-Expires")}
            response = client.put(
                payload["URL-Paths"], json=payload["SubscribeBody"],
                headers={**signed, "X-Project-ID": payload["X-Project-ID"],
                         "Client-ID": str(uuid.uuid4())})
            return (200 if response.status_code == 204 else 500), b""
        return 204, b""

    return answer


def test_confirmation_flow_end_to_end(mailslot_server_factory, store_uri,
                                      receiver_factory):  # noqa: F811
    keys = signing.generate_key_entry("d1", state="active")
    server = mailslot_server_factory(
        store_uri, dispatch=True, env={signing.ENV_VAR: keys},
        settings={"dispatch": {**DISPATCH, "require_confirmation": True}})
    hdrs = headers("confirming")
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as http:
        receiver = receiver_factory(confirm_through_signed_url(http))
        sub = subscribe(http, hdrs, "alarms", receiver.url)
        receiver.wait_for(lambda seen: len(seen) >= 1)
        deadline = time.monotonic() + 10
        while not http.get(f"/v2/queues/alarms/subscriptions/{sub}",
                           headers=hdrs).json()["confirmed"]:
            assert time.monotonic() < deadline, "the subscription was not confirmed"
            time.sleep(0.05)
        ids = post_stream(http, hdrs, "alarms", 0, BATCH)
        seen = receiver.wait_for(lambda seen: any(
            d.json().get("Message_Type") == "Notification" for d in seen))
    notifications = [d.json() for d in seen
                     if d.json().get("Message_Type") == "Notification"]
    assert notifications[0]["subscription_id"] == sub
    assert notifications[0]["message_id"] in ids
    assert seen[0].json()["Message_Type"] == "SubscriptionConfirmation"
