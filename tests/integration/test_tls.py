"""Certificate verification on the real stack (msquic, TLS 1.3, loopback).

Server names (DNS and IP subjectAltNames, wildcards), CA files as the only trust anchors,
SHA-256 pinning, the CERT_NONE warning, and mutual TLS with optional and required client
certificates and a middleware that authorizes by them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs import CA, make_ca
from pywebtransport import ClientConfig, ServerApp, ServerConfig, WebTransportClient, WebTransportSession
from pywebtransport.exceptions import (
    CertificateError,
    CertificateVerificationError,
    ClientError,
    SessionRejectedError,
)
from pywebtransport.quic import CertificateVerifyError, QuicConfiguration, QuicConnection, connect, serve
from pywebtransport.server import create_client_certificate_middleware

pytestmark = pytest.mark.timeout(60)

ALPN = ["pwt-tls-test"]


@dataclass
class Pki:
    dir: Path
    server_ca: CA
    client_ca: CA
    other_ca: CA  # trusted by nobody in the tests (or by the "system" store)
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    p = Pki(d, make_ca(d, "server"), make_ca(d, "client"), make_ca(d, "other"))
    p.files["good"] = p.server_ca.issue(d, "good", dns=("localhost",), ips=("127.0.0.1", "::1"))
    p.files["evil"] = p.server_ca.issue(d, "evil", dns=("evil.example",))
    p.files["wildcard"] = p.server_ca.issue(d, "wildcard", dns=("*.example.test",))
    p.files["ip_only"] = p.server_ca.issue(d, "ip_only", ips=("127.0.0.1",), common_name="localhost")
    p.files["expired"] = p.server_ca.issue(
        d, "expired", dns=("localhost",), ips=("127.0.0.1",), valid_days=(-10, -1)
    )
    p.files["other_good"] = p.other_ca.issue(d, "other_good", dns=("localhost",), ips=("127.0.0.1",))
    p.files["alice"] = p.client_ca.issue(d, "alice", common_name="alice", client=True)
    p.files["bob"] = p.client_ca.issue(d, "bob", common_name="bob", dns=("bob.example",), client=True)
    p.files["mallory"] = p.other_ca.issue(d, "mallory", common_name="alice", client=True)
    return p


async def _noop(conn: QuicConnection) -> None:
    await conn.wait_closed()


async def _quic_server(pki: Pki, which: str) -> Any:
    cert, key = pki.files[which]
    cfg = QuicConfiguration(is_client=False, certfile=str(cert), keyfile=str(key), alpn_protocols=ALPN)
    return await serve("127.0.0.1", 0, cfg, _noop)


async def _quic_connect(
    port: int, host: str = "127.0.0.1", server_name: str | None = None, **kw: Any
) -> QuicConnection:
    cfg = QuicConfiguration(is_client=True, alpn_protocols=ALPN, **kw)
    return await connect(host, port, cfg, server_name=server_name, timeout=10)


# -- finding 1: the server's name -------------------------------------------------


class App:
    def __init__(self, app: ServerApp, port: int) -> None:
        self.app = app
        self.port = port
        self.sessions: list[WebTransportSession] = []
        self.url = f"https://127.0.0.1:{port}/who"


async def start_app(config: ServerConfig, *middleware: Any) -> App:
    """A ServerApp on an ephemeral port whose /who route tells the client certificate."""
    app = ServerApp(config=config)
    for m in middleware:
        app.add_middleware(m)
    holder: list[App] = []

    @app.route("/who")
    async def who(session: WebTransportSession) -> None:
        holder[0].sessions.append(session)
        stream = await session.create_bidirectional_stream()
        cert = session.peer_certificate
        await stream.write_all(cert.subject.encode() if cert else b"-")
        await session.wait_closed()

    await app.__aenter__()
    await app.server.listen(host="127.0.0.1", port=0)
    assert app.server.local_address is not None
    holder.append(App(app, app.server.local_address[1]))
    return holder[0]


async def _close(app: App) -> None:
    await app.app.__aexit__(None, None, None)


async def _who(session: WebTransportSession) -> bytes:
    async for stream in session.incoming_streams():
        return await stream.read_all()  # type: ignore[union-attr]
    return b""


def _server_config(pki: Pki, which: str = "good", **kw: Any) -> ServerConfig:
    cert, key = pki.files[which]
    return ServerConfig.create(certfile=str(cert), keyfile=str(key), **kw)


async def test_client_rejects_a_certificate_for_another_host(pki: Pki) -> None:
    """A CA-signed certificate naming only evil.example must not pass for 127.0.0.1."""
    app = await start_app(_server_config(pki, "evil"))
    try:
        async with WebTransportClient(ClientConfig.create(ca_certs=str(pki.server_ca.path))) as client:
            with pytest.raises(CertificateVerificationError) as info:
                await client.connect(app.url, timeout=10)
        err = info.value
        assert isinstance(err, CertificateError) and isinstance(err, ClientError)
        assert err.expected_host == "127.0.0.1" and err.target_url == app.url
        assert "127.0.0.1" in str(err) and "evil.example" in str(err)
        assert app.sessions == []
        # The same certificate is fine without the name check.
        config = ClientConfig.create(ca_certs=str(pki.server_ca.path), check_hostname=False)
        async with WebTransportClient(config) as client:
            session = await client.connect(app.url, timeout=10)
            assert await _who(session) == b"-"
            assert session.peer_certificate is not None
            assert session.peer_certificate.dns_names == ("evil.example",)
            await session.close()
    finally:
        await _close(app)


async def test_dns_ip_and_wildcard_names(pki: Pki) -> None:
    ca = str(pki.server_ca.path)
    wildcard = await _quic_server(pki, "wildcard")
    ip_only = await _quic_server(pki, "ip_only")
    try:
        for name in ("a.example.test", "A.Example.Test", "a.example.test."):
            conn = await _quic_connect(wildcard.port, cafile=ca, server_name=name)
            assert conn.peer_certificate is not None
            await conn.aclose()
        for name in ("example.test", "b.a.example.test", "a.example.testx", "localhost"):
            with pytest.raises(CertificateVerifyError, match=f"not valid for '{name}'"):
                await _quic_connect(wildcard.port, cafile=ca, server_name=name)
        conn = await _quic_connect(ip_only.port, cafile=ca)  # 127.0.0.1 against an IP SAN
        assert conn.peer_certificate is not None and conn.peer_certificate.ip_addresses == ("127.0.0.1",)
        await conn.aclose()
        # The common name "localhost" is never used for name checks; nor is another IP.
        for name in ("localhost", "127.0.0.2"):
            with pytest.raises(CertificateVerifyError, match="not valid for"):
                await _quic_connect(ip_only.port, cafile=ca, server_name=name)
    finally:
        await wildcard.aclose()
        await ip_only.aclose()


async def test_expired_and_untrusted_certificates_are_named(pki: Pki) -> None:
    ca = str(pki.server_ca.path)
    expired = await _quic_server(pki, "expired")
    other = await _quic_server(pki, "other_good")
    try:
        with pytest.raises(CertificateVerifyError, match="expired"):
            await _quic_connect(expired.port, cafile=ca)
        with pytest.raises(CertificateVerifyError, match="not trusted by the CAs in"):
            await _quic_connect(other.port, cafile=ca)
    finally:
        await expired.aclose()
        await other.aclose()


async def test_ca_certs_are_the_only_trust_anchors(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ca_certs given, a server whose CA is in the system store is still rejected."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca.path))  # the "system" store
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    # A CA file of its own, so no native configuration made before the variable was set
    # (they are shared between equal configurations) can be reused.
    ca_copy = pki.dir / "server-ca-copy-client.pem"
    ca_copy.write_bytes(pki.server_ca.path.read_bytes())
    app = await start_app(_server_config(pki, "other_good"))
    try:
        async with WebTransportClient(ClientConfig.create()) as client:  # system store: trusted
            session = await client.connect(app.url, timeout=10)
            assert await _who(session) == b"-"
            await session.close()
        config = ClientConfig.create(ca_certs=str(ca_copy))
        async with WebTransportClient(config) as client:
            with pytest.raises(CertificateVerificationError, match="not trusted"):
                await client.connect(app.url, timeout=10)
    finally:
        await _close(app)


async def test_server_certificate_hashes_pin_a_self_signed_server(
    pki: Pki, certs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = await start_app(
        ServerConfig.create(certfile=str(certs.self_signed_cert), keyfile=str(certs.self_signed_key))
    )
    der = x509.load_pem_x509_certificate(certs.self_signed_cert.read_bytes()).public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).digest()
    try:
        with caplog.at_level(logging.WARNING, logger="pywebtransport"):
            for pin in (digest, digest.hex(), ":".join(f"{b:02X}" for b in digest)):
                config = ClientConfig.create(server_certificate_hashes=[pin])
                async with WebTransportClient(config) as client:
                    session = await client.connect(app.url, timeout=10)
                    assert session.peer_certificate is not None
                    assert session.peer_certificate.sha256 == digest
                    await session.close()
        assert not [r for r in caplog.records if "CERT_NONE" in r.getMessage()]
        wrong = ClientConfig.create(server_certificate_hashes=[hashlib.sha256(b"x").hexdigest()])
        async with WebTransportClient(wrong) as client:
            with pytest.raises(CertificateVerificationError, match="server_certificate_hashes"):
                await client.connect(app.url, timeout=10)
        # Without a pin the self-signed server is not trusted.
        async with WebTransportClient(ClientConfig.create()) as client:
            with pytest.raises(CertificateVerificationError):
                await client.connect(app.url, timeout=10)
    finally:
        await _close(app)


async def test_cert_none_warns_once(certs: Any, caplog: pytest.LogCaptureFixture) -> None:
    import pywebtransport.client as client_module

    client_module._warned_insecure = False
    app = await start_app(ServerConfig.create(certfile=str(certs.cert), keyfile=str(certs.key)))
    try:
        with caplog.at_level(logging.WARNING, logger="pywebtransport"):
            for _ in range(2):
                async with WebTransportClient(ClientConfig.create(verify_mode=ssl.CERT_NONE)) as client:
                    session = await client.connect(app.url, timeout=10)
                    assert session.peer_certificate is None  # nothing was verified
                    await session.close()
        warnings = [r for r in caplog.records if "CERT_NONE" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert "server_certificate_hashes" in warnings[0].getMessage()
    finally:
        await _close(app)


# -- finding 5: mutual TLS ----------------------------------------------------------


def _client(pki: Pki, who: str | None) -> ClientConfig:
    kw: dict[str, Any] = {"ca_certs": str(pki.server_ca.path)}
    if who is not None:
        cert, key = pki.files[who]
        kw.update(certfile=str(cert), keyfile=str(key))
    return ClientConfig.create(**kw)


async def _attempt(app: App, config: ClientConfig) -> bytes | Exception:
    async with WebTransportClient(config) as client:
        try:
            session = await client.connect(app.url, timeout=10)
            # A rejected client certificate can surface only after the client's side of
            # the handshake completed: the session then never becomes usable.
            who = await asyncio.wait_for(_who(session), 10)
            await session.close()
            return who
        except Exception as exc:  # the caller asserts on the kind
            return exc


async def test_required_client_certificate(pki: Pki) -> None:
    app = await start_app(
        _server_config(pki, verify_mode=ssl.CERT_REQUIRED, ca_certs=str(pki.client_ca.path))
    )
    try:
        assert await _attempt(app, _client(pki, "alice")) == b"CN=alice"
        wrong_ca = await _attempt(app, _client(pki, "mallory"))
        assert isinstance(wrong_ca, ClientError) and "unknown_ca" in str(wrong_ca), wrong_ca
        missing = await _attempt(app, _client(pki, None))
        assert isinstance(missing, ClientError) and "certificate_required" in str(missing), missing
        assert [s.peer_certificate.subject for s in app.sessions if s.peer_certificate] == ["CN=alice"]
        assert len(app.sessions) == 1
        cert = app.sessions[0].peer_certificate
        assert cert is not None and cert.issuer == "CN=client test CA" and cert.der
        assert cert.to_x509().subject.rfc4514_string() == "CN=alice"
    finally:
        await _close(app)


async def test_optional_client_certificate(pki: Pki) -> None:
    app = await start_app(
        _server_config(pki, verify_mode=ssl.CERT_OPTIONAL, ca_certs=str(pki.client_ca.path))
    )
    try:
        assert await _attempt(app, _client(pki, "bob")) == b"CN=bob"  # requested and verified
        assert await _attempt(app, _client(pki, None)) == b"-"  # none is fine
        bad = await _attempt(app, _client(pki, "mallory"))  # a bad one is not
        assert isinstance(bad, ClientError) and "unknown_ca" in str(bad), bad
        assert len(app.sessions) == 2
        bob = app.sessions[0].peer_certificate
        assert bob is not None and bob.dns_names == ("bob.example",) and bob.common_name == "bob"
    finally:
        await _close(app)


async def test_server_ca_certs_are_the_only_trust_anchors(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca.path))  # mallory's CA is a "system" root
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ca_copy = pki.dir / "client-ca-copy-server.pem"
    ca_copy.write_bytes(pki.client_ca.path.read_bytes())
    app = await start_app(_server_config(pki, verify_mode=ssl.CERT_REQUIRED, ca_certs=str(ca_copy)))
    try:
        result = await _attempt(app, _client(pki, "mallory"))
        assert isinstance(result, ClientError) and "unknown_ca" in str(result), result
        assert app.sessions == []
    finally:
        await _close(app)


async def test_client_certificate_middleware(pki: Pki) -> None:
    middleware = create_client_certificate_middleware(allowed_subjects=["CN=alice"])
    app = await start_app(
        _server_config(pki, verify_mode=ssl.CERT_OPTIONAL, ca_certs=str(pki.client_ca.path)), middleware
    )
    try:
        assert await _attempt(app, _client(pki, "alice")) == b"CN=alice"
        for who in ("bob", None):
            result = await _attempt(app, _client(pki, who))
            assert isinstance(result, SessionRejectedError) and result.status == 403, result
        assert [s.peer_certificate.subject for s in app.sessions if s.peer_certificate] == ["CN=alice"]
    finally:
        await _close(app)


async def test_client_certificate_middleware_checks(pki: Pki) -> None:
    """The middleware's checks on their own (sessions as the middleware sees them)."""
    from pywebtransport.exceptions import ConfigurationError, MiddlewareRejected
    from pywebtransport.quic import PeerCertificate

    def cert(who: str) -> PeerCertificate:
        pem = pki.files[who][0].read_bytes()
        return PeerCertificate.from_der(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))

    class Req:
        def __init__(self, c: PeerCertificate | None) -> None:
            self.peer_certificate = c
            self.headers: dict[str, str] = {}
            self.path = "/"
            self.remote_address = None

    bob = cert("bob")
    checks = {
        "names": create_client_certificate_middleware(allowed_names=["BOB.example"]),
        "cn": create_client_certificate_middleware(allowed_names=["bob"]),
        "fingerprint": create_client_certificate_middleware(allowed_fingerprints=[bob.fingerprint]),
        "async": create_client_certificate_middleware(lambda c: asyncio.sleep(0, c.common_name == "bob")),
    }
    for name, check in checks.items():
        await check(Req(bob))  # accepted
        with pytest.raises(MiddlewareRejected):
            await check(Req(cert("alice")))
        with pytest.raises(MiddlewareRejected):
            await check(Req(None))
    with pytest.raises(ConfigurationError):
        create_client_certificate_middleware(allowed_fingerprints=["abc"])
