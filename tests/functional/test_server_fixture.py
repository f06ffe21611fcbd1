"""The server fixture itself: it starts, fails loudly, stops and crashes cleanly."""

from __future__ import annotations

import pathlib
import socket

import httpx
import pytest

from tests.fixtures.server import MailslotServer, ServerStartError, headers


def alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] not in ("Z", "X")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ping(server: MailslotServer) -> int:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        return client.get(f"{server.url}/v2/ping", headers=headers()).status_code


def test_start_failure_is_loud_and_leaves_nothing_running(tmp_path):
    server = MailslotServer(tmp_path, "bogus://nowhere", workers=2, start_timeout=15)
    try:
        with pytest.raises(ServerStartError) as failure:
            server.start()
        message = str(failure.value)
        assert "did not answer" in message or "exited with status" in message
        assert "unsupported storage URI scheme 'bogus'" in message  # the log tail
        assert not server.running and server.pids() == []
        assert port_is_free(server.port)
    finally:
        server.close()


def test_stop_ends_every_process_and_frees_the_port(mailslot_server_factory):
    server = mailslot_server_factory(workers=2)
    assert ping(server) == 204
    pids = server.pids()
    assert server.pid in pids and len(pids) >= 2
    server.stop()
    assert not [pid for pid in pids if alive(pid)]
    assert port_is_free(server.port)
    server.stop()  # idempotent


def test_kill_hard_then_restart_on_the_same_port_and_store(mailslot_server_factory):
    server = mailslot_server_factory(workers=2)
    hdrs = headers("fixture")
    with httpx.Client(base_url=server.url, timeout=5.0, trust_env=False) as client:
        response = client.put("/v2/queues/kept", headers=hdrs)
        assert response.status_code == 201
    victims = server.kill_hard()
    assert server.pid is None and not server.running
    assert victims and not [pid for pid in victims if alive(pid)]
    with pytest.raises(httpx.ConnectError):
        ping(server)

    server.restart()
    assert ping(server) == 204
    with httpx.Client(base_url=server.url, timeout=5.0, trust_env=False) as client:
        response = client.put("/v2/queues/kept", headers=hdrs)
        assert response.status_code == 204  # the queue is still in the store
    assert server.starts == 2


def test_a_taken_port_is_replaced_on_first_start(tmp_path, monkeypatch):
    from tests.fixtures import common

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = common.free_port
        monkeypatch.setattr(common, "free_port", lambda: next(ports, None)
                            or real_free_port())
        server = MailslotServer(tmp_path, workers=1)
        try:
            assert server.port == taken
            server.start()
            assert server.port != taken and ping(server) == 204
            assert "Connection in use" in server.log_path.read_text()
        finally:
            server.close()
