"""Small builders for the storage contract tests."""

from __future__ import annotations

import orjson

from queues.models import NewMessage

P = "proj"


def msg(body, ttl: int = 300, delay: int = 0) -> NewMessage:
    return NewMessage(orjson.dumps(body), ttl, delay)


async def post(driver, queue: str, *bodies, client_id: str = "c1", ttl: int = 300,
               delay: int = 0, project: str = P) -> list[str]:
    return await driver.messages.post(
        project, queue, [msg(b, ttl, delay) for b in bodies], client_id)


def bodies(messages) -> list:
    return [orjson.loads(m.body_json) for m in messages]
