"""Credential rotation: keep each VM supplied with fresh signed URLs.

``mailslot rotate`` reads credential-rotation templates (``template``), keeps
a ledger per target in the store (``ledger``: the metadata of an internal
queue ``rotation.ledger.<target>``, written by compare-and-set), re-issues
grants ``rotate_before`` seconds before they expire (``document``: minting
and the "latest wins" document), delivers them to a credentials queue, a file
or a webhook (``delivery``), watches for pickup (``pickup``: the document
deleted or claimed from the credentials queue, or a grant used) and alerts
once per missed pickup (``daemon``). ``service`` builds and runs it;
``status`` renders ``rotate status`` and ``--dry-run``.

Depends on ``signing``, ``queues.storage``, ``queues.api.signed`` (the key
source, the token parameter and the audit log, shared with the API's
minting) and, for webhooks only, the guarded client of ``subscriptions``.
"""
