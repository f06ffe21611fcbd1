"""Run a SecantusDB test server until SIGTERM/SIGINT (tests only).

Usage: ``python tests/run_secantus.py PORT DATADIR [--standalone]``. Prints the
URI once listening. Run it with the interpreter of ``.venv-mongo``: SecantusDB
is GPL test tooling and never a dependency of Mailslot.

The ``secantusd-py`` CLI of SecantusDB 0.7.0b3 ignores ``ttl_sweep_seconds``,
so this launcher sets it directly (1 s instead of mongod's 60 s) to let TTL
tests finish quickly. ``--standalone`` starts without the one-node replica set
(topology Single, like a standalone mongod; note it still accepts transactions).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading

from secantus import SecantusDBServer


def main(argv: list[str]) -> None:
    standalone = "--standalone" in argv
    args = [a for a in argv if a != "--standalone"]
    port = int(args[0]) if args else 27017
    path = args[1] if len(args) > 1 else tempfile.mkdtemp(prefix="secantus-")
    server = SecantusDBServer(
        host="127.0.0.1",
        port=port,
        storage_path=path,
        replica_set_name=None if standalone else "secantus",
        ttl_sweep_seconds=1.0,
        enable_test_commands=False,
        cache_size="256M",
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    print(server.uri, flush=True)
    done.wait()
    server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
