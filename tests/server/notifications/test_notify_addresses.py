"""SSRF: a team's webhook URL cannot make the server reach loopback, private, link-local or other
non-public addresses, at registration or at delivery, not even wrapped in an IPv6 transition address
(issue 19 item 8). No test here connects to any of them: a tripwire on `socket.create_connection`
proves the refusal comes before any connection. Every address refusal says the same `NOT_PUBLIC`;
the kind of address goes only to the server log."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from server.notifications import addresses, webhook
from server.notifications.addresses import NOT_PUBLIC, WebhookURLRefused

REFUSED = {
    "http://127.0.0.1/hook": "loopback",
    "http://127.8.9.10:8080/": "loopback",
    "http://localhost:8000/": "loopback",  # a name: every address it resolves to is checked
    "http://10.0.0.1/": "private",
    "http://192.168.1.20/": "private",
    "http://172.16.0.1/": "private",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://[::1]/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",  # IPv4-mapped IPv6
    "http://[fe80::1]/": "link-local",
    "http://[fd00::1]/": "private",
    "http://224.0.0.1/": "multicast",
    "http://0.0.0.0/": "unspecified",
    "http://100.64.0.1/": "reserved",  # carrier-grade NAT: not global
    "http://240.0.0.1/": "reserved",
    # IPv6 that carries an IPv4 address (issue 19 item 8): the IPv4 inside decides, and the prefix
    "http://[2002:7f00:1::]/": "loopback (6to4 address wrapping 127.0.0.1)",
    "http://[2002:a9fe:a9fe::1]/": "link-local (6to4 address wrapping 169.254.169.254)",
    "http://[2002:c0a8:114::]/": "private (6to4 address wrapping 192.168.1.20)",
    # Teredo: the client's IPv4 address is the last 32 bits inverted (~127.0.0.1 = 80ff:fffe)
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/": "loopback (Teredo address wrapping 127.0.0.1)",
    "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/": "Teredo prefix, not globally reachable",
    "http://[64:ff9b::7f00:1]/": "loopback (NAT64 address wrapping 127.0.0.1)",
    "http://[64:ff9b::a9fe:a9fe]/": "link-local (NAT64 address wrapping 169.254.169.254)",
    "http://[64:ff9b:1::a00:1]/": "private (local-use NAT64 address wrapping 10.0.0.1)",
    "http://[64:ff9b:1::808:808]/": "local-use NAT64 prefix, not globally reachable",
    "http://[::ffff:169.254.169.254]/": "link-local",
    "http://[::127.0.0.1]/": "loopback (IPv4-compatible address wrapping 127.0.0.1)",
    "http://[::8.8.8.8]/": "IPv4-compatible prefix, not globally reachable",
    "http://[::ffff:0:7f00:1]/": "loopback (IPv4-translated address wrapping 127.0.0.1)",
    "http://[2606:4700::200:5efe:7f00:1]/": "loopback (ISATAP address wrapping 127.0.0.1)",
    "http://[2606:4700::5efe:a00:1]/": "private (ISATAP address wrapping 10.0.0.1)",
    "http://[fe80::200:5efe:808:808]/": "link-local",  # ISATAP: a public IPv4 under a local prefix
}

#: Transition addresses whose IPv4 inside is public and whose prefix is globally reachable.
EMBEDDED_PUBLIC = ("2002:808:808::1", "64:ff9b::808:808", "2606:4700::200:5efe:808:808")

MALFORMED = {
    "ftp://example.org/": "http:// or https://",
    "file:///etc/passwd": "http:// or https://",
    "gopher://example.org/": "http:// or https://",
    "http://user:pw@example.org/": "credentials",
    "http:///nohost": "no host",
    "http://example.org/a b": "whitespace",
    "http://example.org/\r\nX: y": "whitespace or control",
    "http://example.org/\x7f": "whitespace or control",
    # non-ASCII (issue 19 item 8): accepted once, then every delivery failed after connecting
    "http://exämple.org/": "must be ASCII",
    "http://example.org/caf\u00e9": "must be ASCII",
    "http://example.org/\u2028": "must be ASCII",
    "http://example.org/a\u0085b": "must be ASCII",
    "http://example.org/?q=\u202e": "must be ASCII",
    "http://example.org:99999/": "malformed",
    "https://" + "a" * 2000 + ".org/": "longer than",
}


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    attempts: list[Any] = []

    def tripwire(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", tripwire)
    return attempts


@pytest.mark.parametrize(("url", "reason"), REFUSED.items())
def test_non_public_addresses_are_refused(
    url: str, reason: str, no_connections: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=addresses.__name__):
        with pytest.raises(WebhookURLRefused) as refused:
            addresses.check(url, allow_private=False)
        assert refused.value.message == NOT_PUBLIC  # one message: no kind, no address
        assert refused.value.status_code == 400 and refused.value.code == "webhook_url_refused"
        assert reason in caplog.text  # the operator learns why
        outcome = webhook.post(url, "s", "ping", "dlv_x", b"{}", timeout_s=1, allow_private=False)
    assert not outcome.ok and outcome.error == f"refused before connecting: {NOT_PUBLIC}"
    assert no_connections == []


def test_transition_addresses_with_a_public_ipv4_inside_pass() -> None:
    for address in EMBEDDED_PUBLIC:
        assert addresses.refusal(address) is None, address


def test_the_refusal_says_nothing_of_what_the_resolver_answered(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[Any]
) -> None:
    """An internal name that resolves, one that does not, one without records and a literal loopback
    address: a client cannot tell them apart (a resolver oracle for internal names)."""
    answers = {
        "db.internal.example": [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", 80))],
        "empty.internal.example": [],
    }

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    messages = set()
    for host in ("db.internal.example", "missing.internal.example", "empty.internal.example", "127.0.0.1"):
        with pytest.raises(WebhookURLRefused) as refused:
            addresses.check(f"http://{host}/hook", allow_private=False)
        messages.add(refused.value.message)
    assert messages == {NOT_PUBLIC}


@pytest.mark.parametrize(("url", "message"), MALFORMED.items())
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str, message: str) -> None:
    with pytest.raises(WebhookURLRefused) as refused:
        addresses.check(url, allow_private=True)
    assert message in refused.value.message


def test_the_allow_setting_lifts_only_the_address_check(no_connections: list[Any]) -> None:
    target, ips = addresses.check("http://127.0.0.1:8123/x?y=1", allow_private=True)
    assert (target.scheme, target.host, target.port, target.path, ips) == (
        "http",
        "127.0.0.1",
        8123,
        "/x?y=1",
        ["127.0.0.1"],
    )


def test_public_addresses_pass() -> None:
    for address in ("93.184.215.14", "2606:4700::6810:84e5", "8.8.8.8"):
        assert addresses.refusal(address) is None


def test_every_resolved_address_is_checked(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[Any]
) -> None:
    """A name with one public and one private record is refused (DNS answered by a stub: no lookup)."""

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "mixed.example"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(WebhookURLRefused, match="public addresses only"):
        addresses.check("https://mixed.example/hook", allow_private=False)


@pytest.mark.parametrize(
    ("family", "later", "reason"),
    [
        (socket.AF_INET, "169.254.169.254", "link-local"),
        (socket.AF_INET6, "2002:7f00:1::", "loopback (6to4 address wrapping 127.0.0.1)"),
        (socket.AF_INET6, "2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo address wrapping"),
        (socket.AF_INET6, "64:ff9b::a9fe:a9fe", "link-local (NAT64 address wrapping 169.254.169.254)"),
        (socket.AF_INET6, "2606:4700::200:5efe:a9fe:a9fe", "ISATAP address wrapping"),
    ],
)
def test_rebinding_between_registration_and_delivery_is_caught(
    family: socket.AddressFamily,
    later: str,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    no_connections: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The name was public when registered; at delivery it resolves to the metadata address, or to
    an IPv6 address that wraps a non-public IPv4 one (the check runs again at send time)."""
    answers = iter([(socket.AF_INET, "93.184.215.14"), (family, later)])

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        kind, address = next(answers)
        return [(kind, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    addresses.check("https://rebind.example/hook", allow_private=False)  # registration passes
    with caplog.at_level(logging.WARNING, logger=addresses.__name__):
        outcome = webhook.post(
            "https://rebind.example/hook", "s", "ping", "dlv_x", b"{}", timeout_s=1, allow_private=False
        )
    assert not outcome.ok and outcome.error == f"refused before connecting: {NOT_PUBLIC}"
    assert later not in (outcome.error or "")  # the team's delivery log does not name the address
    assert reason in caplog.text and later in caplog.text
    assert no_connections == []


def test_a_stored_non_ascii_url_is_refused_before_connecting(no_connections: list[Any]) -> None:
    """A URL stored before the ASCII rule fails each delivery with a clear reason, not after
    connecting with UnicodeEncodeError."""
    for url in (
        "https://93.184.215.14/caf\u00e9",
        "https://93.184.215.14/\u2028",
        "https://93.184.215.14/\x85",
    ):
        outcome = webhook.post(url, "s", "ping", "dlv_x", b"{}", timeout_s=1, allow_private=True)
        assert not outcome.ok and "must be ASCII" in (outcome.error or ""), url
    assert no_connections == []
