"""What the server acknowledged survives ``kill -9`` of every server process.

Messages are posted in batches (some while the crash happens); only those
acknowledged with 201 must be there after a restart on the same store, with
their bodies. A claim and deletions acknowledged before the crash must hold too.
"""

from __future__ import annotations

import pathlib
import threading
import time
import uuid

import httpx
import pytest

from tests.fixtures.server import MailslotServer, headers

pytestmark = pytest.mark.slow

PROJECT = "durability"
QUEUE = "durable"
BASE = f"/v2/queues/{QUEUE}"
BATCHES = 15
BATCH_SIZE = 20
WORKERS = 2


def alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


def wait_for_workers(server: MailslotServer, count: int,
                     timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(pids := server.pids()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def post(client: httpx.Client, hdrs: dict, bodies: list) -> list[str]:
    document = {"messages": [{"body": b, "ttl": 3600} for b in bodies]}
    response = client.post(f"{BASE}/messages", headers=hdrs, json=document)
    assert response.status_code == 201, response.text
    return [href.rsplit("/", 1)[-1] for href in response.json()["resources"]]


class BackgroundProducer(threading.Thread):
    """Keeps posting small batches until the server goes away (bounded)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acked: dict[str, dict] = {}
        self.batches = 0
        self.stop_at = time.monotonic() + 15.0

    def run(self) -> None:
        hdrs = headers(PROJECT)
        with httpx.Client(base_url=self.url, timeout=5.0, trust_env=False) as client:
            for batch in range(2000):
                if time.monotonic() > self.stop_at:
                    return
                bodies = [{"bg": batch, "k": k} for k in range(5)]
                try:
                    response = client.post(
                        f"{BASE}/messages", headers=hdrs,
                        json={"messages": [{"body": b} for b in bodies]})
                except httpx.HTTPError:
                    return  # the server was killed under us
                if response.status_code != 201:
                    return
                ids = [h.rsplit("/", 1)[-1] for h in response.json()["resources"]]
                self.acked.update(zip(ids, bodies))
                self.batches += 1


def test_acknowledged_writes_survive_kill_9_of_every_process(killing_store_uri,
                                                              mailslot_server_factory):
    server = mailslot_server_factory(killing_store_uri, workers=WORKERS)
    hdrs = headers(PROJECT)
    acked: dict[str, dict] = {}
    with httpx.Client(base_url=server.url, timeout=10.0, trust_env=False) as client:
        for batch in range(BATCHES):
            bodies = [{"batch": batch, "k": k, "pad": uuid.uuid4().hex}
                      for k in range(BATCH_SIZE)]
            acked.update(zip(post(client, hdrs, bodies), bodies))
        assert len(acked) == BATCHES * BATCH_SIZE
        ordered = list(acked)

        # Acknowledged state changes other than posts: a claim and deletions.
        response = client.post(f"{BASE}/claims", params={"limit": 5}, headers=hdrs,
                               json={"ttl": 600, "grace": 60})
        assert response.status_code == 201
        claim_id = response.headers["location"].rsplit("/", 1)[-1]
        claimed = [m["id"] for m in response.json()["messages"]]
        assert claimed == ordered[:5]
        deleted = ordered[-5:]
        # Literal commas: falcon splits ?ids=a,b only on unencoded commas.
        response = client.delete(f"{BASE}/messages?ids={','.join(deleted)}",
                                 headers=hdrs)
        assert response.status_code == 204
        for mid in deleted:
            del acked[mid]

    pids = wait_for_workers(server, 1 + WORKERS)
    assert len(pids) == 1 + WORKERS, f"expected master + {WORKERS} workers, got {pids}"

    producer = BackgroundProducer(server.url)
    producer.start()
    deadline = time.monotonic() + 10.0
    while producer.batches < 3 and producer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert producer.batches >= 3, "background producer made no progress"
    victims = server.kill_hard()  # while the producer is mid-flight
    producer.join(timeout=20)
    assert not producer.is_alive()
    assert set(pids) <= set(victims)
    assert not [pid for pid in victims if alive(pid)], "a server process survived"
    acked.update(producer.acked)

    server.restart()  # same port, config and store; waits for /v2/ping 204
    assert server.pid not in victims
    with httpx.Client(base_url=server.url, timeout=10.0, trust_env=False) as client:
        reader = headers(PROJECT)
        found: dict[str, object] = {}
        ids = list(acked)
        for start in range(0, len(ids), 20):
            chunk = ids[start:start + 20]
            response = client.get(f"{BASE}/messages?ids={','.join(chunk)}",
                                  headers=reader)
            assert response.status_code == 200, response.text
            found.update((m["id"], m["body"]) for m in response.json()["messages"])
        missing = [mid for mid in acked if mid not in found]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"
        assert found == acked

        # Deleted before the crash: still deleted.
        response = client.get(f"{BASE}/messages?ids={','.join(deleted)}",
                              headers=reader)
        assert response.status_code == 404

        # The claim survived with its messages.
        response = client.get(f"{BASE}/claims/{claim_id}", headers=reader)
        assert response.status_code == 200, response.text
        assert sorted(m["id"] for m in response.json()["messages"]) == sorted(claimed)

        # Listing (echo, include_claimed) pages through every acknowledged message
        # in post order; the background producer's unacknowledged last batch, if
        # the crash came after its commit, may be there too.
        listed: list[str] = []
        href = f"{BASE}/messages?echo=true&include_claimed=true&limit=20"
        for _ in range(100):
            page = client.get(href, headers=reader).json()
            if not page["messages"]:
                break
            listed.extend(m["id"] for m in page["messages"])
            href = page["links"][0]["href"]
        assert len(listed) == len(set(listed))
        assert set(acked) <= set(listed)
        assert [mid for mid in listed if mid in acked] == list(acked)
        assert len(set(listed) - set(acked)) <= 5

        stats = client.get(f"{BASE}/stats", headers=reader).json()["messages"]
        assert stats["claimed"] == len(claimed)
        assert stats["total"] == len(listed)
