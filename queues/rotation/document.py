"""Minting a generation, and the "latest wins" document delivered for it.

The document (integration.md §6.3)::

    {"target": "web-1", "project": "demo", "generation": 7,
     "issued_at": 1764000000,
     "grants": [{"queue", "project", "ops", "url", "token", "kid", "jti",
                 "expires"}, ...],
     "credentials": {same fields, for the credentials queue},
     "next_check_before": 1764002100}

``grants`` are the template's. ``credentials`` (present when the target has a
queue delivery) is a fresh ``read``+``delete`` grant on the credentials queue
itself: the VM reads the next document with it, so each document carries the
access to its successor. It is in every copy, so a file or user-data copy
can bootstrap a VM onto the queue. ``next_check_before`` is the latest
moment the VM should look for the next document: the pickup deadline of the
next generation (this one's first expiry minus ``min_overlap``).

The document holds tokens: it is never logged, and the ledger keeps only its
``jti``\\ s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import signing
from queues.api.signed import TOKEN_PARAM, audit
from queues.errors import ConfigError, MailslotError
from queues.rotation.ledger import CREDENTIALS, GRANT, Generation, IssuedGrant
from queues.rotation.template import Target
from queues.storage.base import Driver

CREDENTIALS_OPS = ("delete", "read")


@dataclasses.dataclass(frozen=True)
class Issue:
    """A minted generation: its ledger record and its document (with tokens)."""

    generation: Generation
    document: dict[str, Any]
    ttl: int


@dataclasses.dataclass(frozen=True)
class _Spec:
    kind: str
    project: str
    queue: str
    ops: tuple[str, ...]


def effective_ttl(target: Target, signer: signing.GrantSigner) -> int:
    """The template's ttl capped by ``signing.max_ttl``."""
    return min(target.timing.ttl, signer.max_ttl)


class Minter:
    """Mints every grant of a target with the current active key."""

    def __init__(self, storage: Driver,
                 signer: Callable[[], signing.GrantSigner | None],
                 base_url: str) -> None:
        self._storage = storage
        self._signer = signer
        self._base_url = base_url.rstrip("/")

    async def issue(self, target: Target, number: int, now: float,
                    previous: Generation | None) -> Issue:
        """Generation ``number`` of ``target``; nothing is stored or sent."""
        signer = self._signer()
        if signer is None:
            raise ConfigError("no signing keys: set signing.keys_file or "
                              "MAILSLOT_SIGNING_KEYS")
        ttl = effective_ttl(target, signer)
        minted = [await self._mint(signer, spec, now, ttl) for spec in _specs(target)]
        records = [record for record, _ in minted]
        generation = Generation(
            number=number, issued_at=now, digest=target.digest(), grants=records,
            pickup_deadline=_pickup_deadline(target, records, previous))
        _check_fresh(target, generation, now)
        for record, (kid, _) in minted:
            audit("mint", kid=kid, jti=record.jti, project=record.project,
                  queue=record.queue, ops=",".join(record.ops), exp=record.exp,
                  by=f"rotate:{target.name}")
        return Issue(generation, self._document(target, generation, minted), ttl)

    async def _mint(self, signer: signing.GrantSigner, spec: _Spec, now: float,
                    ttl: int) -> tuple[IssuedGrant, tuple[str, str]]:
        queue_generation = await self._storage.grants.generation(spec.project,
                                                                 spec.queue)
        try:
            token, grant = signer.mint(spec.project, spec.queue, spec.ops, now=now,
                                       ttl=ttl, gen=queue_generation)
        except signing.GrantError as ex:
            raise ConfigError(f"cannot mint a grant on {spec.queue}: {ex}") from None
        record = IssuedGrant(spec.kind, spec.project, spec.queue, spec.ops,
                             grant.jti, grant.exp)
        return record, (grant.kid, token)

    def _document(self, target: Target, generation: Generation,
                  minted: list[tuple[IssuedGrant, tuple[str, str]]]) -> dict[str, Any]:
        entries = {id(record): self._entry(record, *secret)
                   for record, secret in minted}
        document: dict[str, Any] = {
            "target": target.name, "project": target.project,
            "generation": generation.number, "issued_at": int(generation.issued_at),
            "grants": [entries[id(r)] for r, _ in minted if r.kind == GRANT],
            "next_check_before": int(generation.expires - target.timing.min_overlap),
        }
        credentials = [entries[id(r)] for r, _ in minted if r.kind == CREDENTIALS]
        if credentials:
            document["credentials"] = credentials[0]
        return document

    def _entry(self, record: IssuedGrant, kid: str, token: str) -> dict[str, Any]:
        credential = signing.format_credential(kid, token)
        return {
            "queue": record.queue, "project": record.project, "ops": list(record.ops),
            "url": (f"{self._base_url}/v2/queues/{record.queue}/messages"
                    f"?{TOKEN_PARAM}={credential}"),
            "token": token, "kid": kid, "jti": record.jti, "expires": record.exp,
        }


def _specs(target: Target) -> list[_Spec]:
    specs = [_Spec(GRANT, g.project, g.queue, g.ops) for g in target.grants]
    if target.credentials_queue is not None:
        specs.append(_Spec(CREDENTIALS, target.project, target.credentials_queue,
                           CREDENTIALS_OPS))
    return specs


def _pickup_deadline(target: Target, grants: list[IssuedGrant],
                     previous: Generation | None) -> float:
    """The target must hold the new generation before the previous one starts
    to expire (less ``min_overlap``); with no usable previous one, before its
    own first expiry (less ``min_overlap``)."""
    if previous is not None and previous.revoked is None:
        ends = previous.expires
    else:
        ends = min(g.exp for g in grants)
    return float(ends - target.timing.min_overlap)


def _check_fresh(target: Target, generation: Generation, now: float) -> None:
    """Refuse grants already due for rotation when issued (skewed clock or a
    ttl capped below rotate_before), which would re-issue on every pass."""
    if generation.expires - now <= target.timing.rotate_before:
        raise MailslotError(
            f"target {target.name}: grants minted now would expire within"
            f" rotate_before ({target.timing.rotate_before} s); check signing.max_ttl"
            " and the clock")
