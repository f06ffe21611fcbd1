"""mailto: deliveries to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from subscriptions import result as r
from subscriptions.classify import Outcome, classify
from subscriptions.mailto import (
    InvalidMail, SmtpSettings, deliver, parse_mailto, smtp_error_class,
)
from subscriptions.payload import delivery_id
from tests.unit.subscriptions.conftest import (
    client_tls, free_port, make_cert, make_job, make_subscription, server_tls,
)

SENDER = "notify@mailslot.test"


class Recorder:
    """aiosmtpd handler: records messages, can refuse recipients."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.refuse = refuse or {}
        self.envelopes: list = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def message(self, index: int = 0) -> email.message.EmailMessage:
        return email.message_from_bytes(self.envelopes[index].content,
                                        policy=email.policy.default)


def check_login(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login, auth_data.password) == (b"relay", b"s3cret")
    # handled=False: aiosmtpd then answers 535 itself.
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    """``smtp_server(handler, **controller_kwargs) -> port``; stopped after."""
    controllers: list[Controller] = []

    def start(handler, **kwargs) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port,
                                ready_timeout=5, **kwargs)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def settings(port: int, **kwargs) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, timeout=5,
                        **kwargs)


async def test_mail_to_subject_from_and_body(smtp_server):
    handler = Recorder()
    port = smtp_server(handler)
    sub = make_subscription("mailto:ops@example.com?subject=Queue%20event",
                            options={"from": "Jack <jack@example.com>",
                                     "subject": "ignored"})
    result = await deliver(sub, make_job(), settings(port))
    assert (result.status, result.error) == (None, None)
    assert classify(result).outcome is Outcome.DELIVERED
    envelope = handler.envelopes[0]
    assert envelope.mail_from == SENDER  # the relay's own, not the subscriber's
    assert envelope.rcpt_tos == ["ops@example.com"]
    msg = handler.message()
    assert msg["To"] == "ops@example.com"
    assert msg["From"] == "Jack <jack@example.com>"
    assert msg["Subject"] == "Queue event"
    assert msg["Message-ID"] == f"<{delivery_id('sub-1', 'msg-1')}@mailslot.test>"
    assert json.loads(msg.get_content()) == {
        "ttl": 300, "body": {"event": "E1"}, "Message_Type": "Notification",
        "queue_name": "orders", "message_id": "msg-1", "subscription_id": "sub-1",
    }


async def test_subject_and_from_fall_back_to_options_and_config(smtp_server):
    handler = Recorder()
    port = smtp_server(handler)
    sub = make_subscription("mailto:a@example.com,b@example.com",
                            options={"subject": "Hello"})
    await deliver(sub, make_job(), settings(port))
    await deliver(make_subscription("mailto:a@example.com"), make_job(), settings(port))
    first, second = handler.message(0), handler.message(1)
    assert handler.envelopes[0].rcpt_tos == ["a@example.com", "b@example.com"]
    assert (first["Subject"], first["From"]) == ("Hello", SENDER)
    assert second["Subject"] is None


async def test_message_id_is_stable_across_retries(smtp_server):
    handler = Recorder()
    port = smtp_server(handler)
    sub = make_subscription("mailto:a@example.com")
    await deliver(sub, make_job(), settings(port))
    await deliver(sub, make_job(), settings(port))
    assert handler.message(0)["Message-ID"] == handler.message(1)["Message-ID"]


@pytest.mark.parametrize("code, error", [
    ("550 5.1.1 No such user", r.SMTP_REJECTED),
    ("450 4.2.0 Mailbox busy", r.SMTP_TRANSIENT),
])
async def test_refused_recipient(smtp_server, code, error):
    port = smtp_server(Recorder(refuse={"gone@example.com": code}))
    result = await deliver(make_subscription("mailto:gone@example.com"), make_job(),
                           settings(port))
    assert result.error == error
    assert code.split()[0] in result.detail


async def test_partly_refused_counts_as_delivered(smtp_server):
    handler = Recorder(refuse={"gone@example.com": "550 No such user"})
    port = smtp_server(handler)
    sub = make_subscription("mailto:ok@example.com,gone@example.com")
    result = await deliver(sub, make_job(), settings(port))
    assert classify(result).outcome is Outcome.DELIVERED
    assert "gone@example.com 550" in result.response
    assert handler.envelopes[0].rcpt_tos == ["ok@example.com"]


async def test_connection_refused_is_retried():
    result = await deliver(make_subscription("mailto:a@example.com"), make_job(),
                           settings(free_port()))
    assert result.error == r.CONNECT
    assert classify(result).outcome is Outcome.RETRY


@pytest.mark.parametrize("subscriber", [
    "mailto:",
    "mailto:?subject=x",
    "mailto:not-an-address",
    "mailto:j%C3%B6rg@example.com",
    "mailto:a@example.com%0d%0aBcc:%20evil@example.com",
    "mailto:a@example.com?subject=hi%0d%0aBcc:%20evil@example.com",
    "http://example.com/",
])
async def test_invalid_subscribers_fail_without_sending(smtp_server, subscriber):
    handler = Recorder()
    port = smtp_server(handler)
    result = await deliver(make_subscription(subscriber), make_job(), settings(port))
    assert result.error == r.INVALID_REQUEST
    assert classify(result).outcome is Outcome.FAILED
    assert handler.envelopes == []


async def test_header_injection_through_options_is_refused(smtp_server):
    handler = Recorder()
    port = smtp_server(handler)
    sub = make_subscription("mailto:a@example.com",
                            options={"from": "x@example.com\r\nBcc: evil@example.com"})
    result = await deliver(sub, make_job(), settings(port))
    assert result.error == r.INVALID_REQUEST
    assert handler.envelopes == []


def test_parse_mailto():
    target = parse_mailto("mailto:a%40example.com,b@example.com?Subject=Hi%21")
    assert target.to == ("a@example.com", "b@example.com")
    assert target.subject == "Hi!"
    with pytest.raises(InvalidMail):
        parse_mailto("mailto:Name <a@example.com>")


# --- TLS and credentials -----------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path):
    return make_cert(tmp_path, ["localhost"], ips=("127.0.0.1",))


async def test_starttls_with_login(smtp_server, tls_files):
    cert, key = tls_files
    handler = Recorder()
    port = smtp_server(handler, tls_context=server_tls(cert, key),
                       require_starttls=True, authenticator=check_login,
                       auth_required=True)
    config = settings(port, security="starttls", username="relay", password="s3cret")
    result = await deliver(make_subscription("mailto:a@example.com"), make_job(),
                           config, ssl_context=client_tls(cert))
    assert result.error is None, result.detail
    assert len(handler.envelopes) == 1
    assert "s3cret" not in repr(config)


async def test_wrong_password_is_an_auth_error(smtp_server, tls_files):
    cert, key = tls_files
    port = smtp_server(Recorder(), tls_context=server_tls(cert, key),
                       require_starttls=True, authenticator=check_login,
                       auth_required=True)
    config = settings(port, security="starttls", username="relay", password="nope")
    result = await deliver(make_subscription("mailto:a@example.com"), make_job(),
                           config, ssl_context=client_tls(cert))
    assert result.error == r.SMTP_AUTH, result.detail
    assert "nope" not in result.detail


async def test_untrusted_certificate_is_a_tls_error(smtp_server, tls_files):
    cert, key = tls_files
    port = smtp_server(Recorder(), tls_context=server_tls(cert, key))
    result = await deliver(make_subscription("mailto:a@example.com"), make_job(),
                           settings(port, security="starttls"),
                           ssl_context=ssl.create_default_context())
    assert result.error == r.TLS


async def test_implicit_tls(smtp_server, tls_files):
    cert, key = tls_files
    handler = Recorder()
    port = smtp_server(handler, ssl_context=server_tls(cert, key))
    result = await deliver(make_subscription("mailto:a@example.com"), make_job(),
                           settings(port, security="tls"), ssl_context=client_tls(cert))
    assert result.error is None, result.detail
    assert len(handler.envelopes) == 1


async def test_credentials_are_never_sent_in_clear(smtp_server):
    handler = Recorder()
    port = smtp_server(handler, authenticator=check_login, auth_require_tls=False)
    config = settings(port, username="relay", password="s3cret")
    sub = make_subscription("mailto:a@example.com")
    result = await deliver(sub, make_job(), config)
    assert result.error == r.TLS
    assert handler.envelopes == []


async def test_unknown_security_mode_is_refused():
    result = await deliver(make_subscription("mailto:a@example.com"), make_job(),
                           settings(1, security="ssl3"))
    assert result.error == r.INVALID_REQUEST


@pytest.mark.parametrize("exc, error", [
    (TimeoutError(), r.TIMEOUT),
    (ConnectionResetError(), r.CONNECT),
    (RuntimeError("bug"), r.INTERNAL),
])
def test_smtp_error_class_fallbacks(exc, error):
    assert smtp_error_class(exc) == error
