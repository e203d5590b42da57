"""Unit tests of the certificate verification the QUIC layer runs on the event loop."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from certs import CA, make_ca
from pywebtransport.quic import QuicConfiguration
from pywebtransport.quic.tls import (
    ALERT_CERTIFICATE_EXPIRED,
    ALERT_CERTIFICATE_REQUIRED,
    ALERT_UNKNOWN_CA,
    _pkcs7_certificates,
    verify_peer_certificate,
)


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return make_ca(tmp_path_factory.mktemp("ca"), "unit")


def _client(**kw: object) -> QuicConfiguration:
    return QuicConfiguration(is_client=True, **kw)  # type: ignore[arg-type]


def test_names(ca: CA, tmp_path: Path) -> None:
    leaf = _der(ca.issue(tmp_path, "leaf", dns=("*.example.test", "xn--bcher-kva.example"), ips=("::1",))[0])
    cfg = _client(cafile=str(ca.path))
    for name in ("a.example.test", "A.EXAMPLE.TEST.", "bücher.example", "::1", "[::1]"):
        verdict = verify_peer_certificate(cfg, leaf, b"", name)
        assert verdict.accepted, (name, verdict.error)
    for name in ("example.test", "a.b.example.test", "127.0.0.1", "::2", "bucher.example"):
        verdict = verify_peer_certificate(cfg, leaf, b"", name)
        assert not verdict.accepted and f"not valid for {name!r}" in verdict.error, name
    # check_hostname=False still checks the chain.
    assert verify_peer_certificate(_client(cafile=str(ca.path), check_hostname=False), leaf, b"", "x").accepted
    other = make_ca(tmp_path, "other")
    verdict = verify_peer_certificate(_client(cafile=str(other.path), check_hostname=False), leaf, b"", "x")
    assert not verdict.accepted and verdict.alert == ALERT_UNKNOWN_CA


def test_chain_with_an_intermediate_from_the_peer(ca: CA, tmp_path: Path) -> None:
    inter_path, inter_key_path = ca.issue(tmp_path, "inter", common_name="intermediate")
    # Turn the issued certificate into a CA: re-issue with CA constraints.
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization

    inter_key = serialization.load_pem_private_key(inter_key_path.read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    inter = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(ca.cert.subject)
        .public_key(inter_key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=5))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    sub = CA(inter, inter_key, inter_path)  # type: ignore[arg-type]
    leaf = _der(sub.issue(tmp_path, "leaf2", dns=("svc.example",))[0])
    cfg = _client(cafile=str(ca.path))
    assert not verify_peer_certificate(cfg, leaf, b"", "svc.example").accepted  # no intermediate
    leaf_cert = x509.load_der_x509_certificate(leaf)
    blob = pkcs7.serialize_certificates([leaf_cert, inter], Encoding.DER)
    assert sorted(_pkcs7_certificates(blob)) == sorted([leaf, inter.public_bytes(Encoding.DER)])
    verdict = verify_peer_certificate(cfg, leaf, blob, "svc.example")
    assert verdict.accepted, verdict.error
    assert verdict.certificate is not None and len(verdict.certificate.chain) == 2
    assert verify_peer_certificate(cfg, leaf, b"\x30\x03junk", "svc.example").accepted is False


def test_pins(ca: CA, tmp_path: Path) -> None:
    leaf = _der(ca.issue(tmp_path, "pinned", dns=("a.test",))[0])
    digest = hashlib.sha256(leaf).digest()
    verdict = verify_peer_certificate(_client(certificate_hashes=[digest]), leaf, b"", "anything")
    assert verdict.accepted and verdict.certificate is not None and verdict.certificate.sha256 == digest
    verdict = verify_peer_certificate(_client(certificate_hashes=[bytes(32)]), leaf, b"", "a.test")
    assert not verdict.accepted and digest.hex() in verdict.error
    old = _der(ca.issue(tmp_path, "old", dns=("a.test",), valid_days=(-5, -1))[0])
    pinned = _client(certificate_hashes=[hashlib.sha256(old).digest()])
    verdict = verify_peer_certificate(pinned, old, b"", "a.test")
    assert not verdict.accepted and verdict.alert == ALERT_CERTIFICATE_EXPIRED and "expired" in verdict.error


def test_client_certificates_on_a_server(ca: CA, tmp_path: Path) -> None:
    optional = QuicConfiguration(
        is_client=False, certfile=None, keyfile=None, pkcs12=b"x", cafile=str(ca.path),
        request_client_certificate=True,
    )
    required = QuicConfiguration(
        is_client=False, pkcs12=b"x", cafile=str(ca.path), verify_peer=True
    )
    assert verify_peer_certificate(optional, b"", b"", None).accepted
    verdict = verify_peer_certificate(required, b"", b"", None)
    assert not verdict.accepted and verdict.alert == ALERT_CERTIFICATE_REQUIRED
    no_san = _der(ca.issue(tmp_path, "nosan", common_name="alice", client=True)[0])
    verdict = verify_peer_certificate(required, no_san, b"", None)
    assert verdict.accepted and verdict.certificate is not None
    assert verdict.certificate.subject == "CN=alice" and verdict.certificate.common_name == "alice"
    server_only = _der(ca.issue(tmp_path, "srv", dns=("srv.example",))[0])  # no EKU: allowed
    assert verify_peer_certificate(required, server_only, b"", None).accepted


def test_cached_verdicts_follow_the_ca_file(ca: CA, tmp_path: Path) -> None:
    leaf = _der(ca.issue(tmp_path, "cached", dns=("c.test",))[0])
    ca_file = tmp_path / "trust.pem"
    ca_file.write_bytes(ca.path.read_bytes())
    cfg = _client(cafile=str(ca_file))
    assert verify_peer_certificate(cfg, leaf, b"", "c.test").accepted
    assert verify_peer_certificate(cfg, leaf, b"", "c.test").accepted  # from the cache
    ca_file.write_bytes(make_ca(tmp_path, "replacement").path.read_bytes())
    stamp = time.time() + 5
    os.utime(ca_file, (stamp, stamp))
    verdict = verify_peer_certificate(cfg, leaf, b"", "c.test")
    assert not verdict.accepted and verdict.alert == ALERT_UNKNOWN_CA


def test_names_cryptography_will_not_match(ca: CA, tmp_path: Path) -> None:
    """Underscores (container service names) are matched here after the chain is checked."""
    leaf = _der(ca.issue(tmp_path, "odd", dns=("my_service", "*.my_net.example", "ok.example"))[0])
    cfg = _client(cafile=str(ca.path))
    for name in ("my_service", "MY_SERVICE.", "a.my_net.example", "ok.example"):
        verdict = verify_peer_certificate(cfg, leaf, b"", name)
        assert verdict.accepted, (name, verdict.error)
    for name in ("other_service", "b.a.my_net.example", "my_net.example", "", "a..b"):
        verdict = verify_peer_certificate(cfg, leaf, b"", name)
        assert not verdict.accepted, name
    other = _client(cafile=str(make_ca(tmp_path, "stranger").path))
    verdict = verify_peer_certificate(other, leaf, b"", "my_service")
    assert not verdict.accepted and verdict.alert == ALERT_UNKNOWN_CA
