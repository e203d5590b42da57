"""Tests for pywebtransport.utils."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from pywebtransport import utils
from pywebtransport.exceptions import CertificateError, ConfigurationError, TimeoutError


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


# --- certificates ----------------------------------------------------------------------


def test_self_signed_cert_files_and_contents(tmp_path: Path) -> None:
    cert_path, key_path = utils.generate_self_signed_cert("example.test", output_dir=tmp_path, days_valid=30)
    assert cert_path == str(tmp_path / "example.test.crt")
    assert key_path == str(tmp_path / "example.test.key")
    cert_pem = Path(cert_path).read_bytes()
    key_pem = Path(key_path).read_bytes()
    assert cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # unencrypted PKCS#8
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "example.test"
    assert cert.issuer == cert.subject
    assert _san(cert).get_values_for_type(x509.DNSName) == ["example.test"]
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29) < lifetime <= datetime.timedelta(days=30)
    assert cert.not_valid_before_utc < datetime.datetime.now(datetime.UTC)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    utils.load_certificate(cert_path, key_path)  # the key matches the certificate


def test_existing_key_file_is_replaced_with_mode_0600(tmp_path: Path) -> None:
    """A key file left world-readable by something else does not stay so (issue 8, finding 6)."""
    key_file = tmp_path / "example.test.key"
    key_file.write_bytes(b"old key")
    os.chmod(key_file, 0o644)
    _, key_path = utils.generate_self_signed_cert("example.test", output_dir=tmp_path)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert Path(key_path).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example.test.crt", "example.test.key"]


def test_key_and_cert_are_not_written_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim_key, victim_cert = outside / "victim.key", outside / "victim.crt"
    victim_key.write_bytes(b"precious")
    victim_cert.write_bytes(b"precious")
    os.chmod(victim_key, 0o644)
    out = tmp_path / "certs"
    out.mkdir()
    (out / "example.test.key").symlink_to(victim_key)
    (out / "example.test.crt").symlink_to(victim_cert)
    cert_path, key_path = utils.generate_self_signed_cert("example.test", output_dir=out)
    assert victim_key.read_bytes() == b"precious" and victim_cert.read_bytes() == b"precious"
    assert stat.S_IMODE(os.stat(victim_key).st_mode) == 0o644
    for path in (cert_path, key_path):
        assert not os.path.islink(path) and os.path.isfile(path)
    assert stat.S_IMODE(os.lstat(key_path).st_mode) == 0o600
    utils.load_certificate(cert_path, key_path)


def test_localhost_cert_covers_loopback_addresses(tmp_path: Path) -> None:
    cert_path, _ = utils.generate_self_signed_cert("localhost", output_dir=tmp_path)
    san = _san(x509.load_pem_x509_certificate(Path(cert_path).read_bytes()))
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_ip_hostname_gets_ip_san(tmp_path: Path) -> None:
    cert_path, _ = utils.generate_self_signed_cert("10.1.2.3", output_dir=tmp_path)
    san = _san(x509.load_pem_x509_certificate(Path(cert_path).read_bytes()))
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert san.get_values_for_type(x509.DNSName) == []


def test_ipv6_hostname_file_names_are_portable(tmp_path: Path) -> None:
    cert_path, key_path = utils.generate_self_signed_cert("::1", output_dir=tmp_path)
    assert Path(cert_path).name == "__1.crt" and Path(key_path).name == "__1.key"


def test_default_output_dir_is_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cert_path, key_path = utils.generate_self_signed_cert("localhost")
    assert Path(cert_path).resolve() == tmp_path / "localhost.crt"
    assert (tmp_path / "localhost.key").is_file()


def test_self_signed_cert_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        utils.generate_self_signed_cert("h", output_dir=tmp_path, key_size=1024)
    with pytest.raises(ConfigurationError):
        utils.generate_self_signed_cert("h", output_dir=tmp_path, days_valid=0)
    with pytest.raises(ConfigurationError):
        utils.generate_self_signed_cert("../evil", output_dir=tmp_path)


def test_browser_cert_meets_chrome_rules(tmp_path: Path) -> None:
    cert_path, key_path, digest = utils.generate_browser_cert("localhost", output_dir=tmp_path)
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(days=14)
    assert digest == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    assert utils.cert_sha256(cert_path) == digest
    utils.load_certificate(cert_path, key_path)


def test_browser_cert_longest_validity(tmp_path: Path) -> None:
    cert_path, _, _ = utils.generate_browser_cert("h", output_dir=tmp_path, days_valid=14)
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(days=14)
    with pytest.raises(ConfigurationError):
        utils.generate_browser_cert("h", output_dir=tmp_path, days_valid=15)


def test_cert_sha256_reads_der(tmp_path: Path) -> None:
    cert_path, _ = utils.generate_self_signed_cert("h", output_dir=tmp_path)
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    der_path = tmp_path / "h.der"
    der_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert utils.cert_sha256(der_path) == utils.cert_sha256(cert_path)


def test_load_certificate_errors(tmp_path: Path) -> None:
    with pytest.raises(CertificateError) as info:
        utils.load_certificate(tmp_path / "missing.crt")
    assert info.value.certificate_error == "file_not_found"
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"not a certificate")
    with pytest.raises(CertificateError, match="Not a valid certificate"):
        utils.load_certificate(garbage)
    cert_a, _, _ = utils.generate_browser_cert("a", output_dir=tmp_path)
    _, key_b, _ = utils.generate_browser_cert("b", output_dir=tmp_path)
    with pytest.raises(CertificateError) as info:
        utils.load_certificate(cert_a, key_b)
    assert info.value.certificate_error == "key_mismatch"
    with pytest.raises(CertificateError):
        utils.load_certificate(cert_a, tmp_path / "missing.key")


# --- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://127.0.0.1:4433/", ("127.0.0.1", 4433, "/")),
        ("https://example.com", ("example.com", 443, "/")),
        ("https://example.com/chat?room=1#frag", ("example.com", 443, "/chat?room=1")),
        ("https://[::1]:4433/echo", ("::1", 4433, "/echo")),
        ("HTTPS://Example.COM:8443/Path", ("example.com", 8443, "/Path")),
    ],
)
def test_parse_webtransport_url(url: str, expected: tuple[str, int, str]) -> None:
    assert utils.parse_webtransport_url(url) == expected
    assert utils.validate_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/", "https"),
        ("wss://example.com/", "https"),
        ("example.com:4433/", "https"),
        ("https:///path", "host"),
        ("https://example.com:0/", "port"),
        ("https://example.com:70000/", "port"),
        ("https://example.com:abc/", "port"),
        ("https://example.com:/", "port"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://[::1/", "IPv6"),
    ],
)
def test_parse_webtransport_url_errors(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason) as info:
        utils.parse_webtransport_url(url)
    assert info.value.config_key == "url"
    assert not utils.validate_url(url)


def test_build_webtransport_url() -> None:
    assert utils.build_webtransport_url("localhost", 4433) == "https://localhost:4433/"
    assert utils.build_webtransport_url("::1", 4433, "echo") == "https://[::1]:4433/echo"
    assert utils.build_webtransport_url("h", 1, path="/p", query_params={"a": "b c"}) == "https://h:1/p?a=b+c"
    with pytest.raises(ConfigurationError):
        utils.build_webtransport_url("h", 0)
    with pytest.raises(ConfigurationError):
        utils.build_webtransport_url("", 1)


hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses().map(str),
)
paths = st.from_regex(r"(/[A-Za-z0-9._~-]{0,10}){1,4}", fullmatch=True)


@given(host=hosts, port=st.integers(min_value=1, max_value=65535), path=paths)
def test_build_then_parse_round_trips(host: str, port: int, path: str) -> None:
    url = utils.build_webtransport_url(host, port, path)
    parsed_host, parsed_port, parsed_path = utils.parse_webtransport_url(url)
    if ":" in host:  # IPv6 literals come back without brackets, possibly re-spelled
        assert ipaddress.ip_address(parsed_host) == ipaddress.ip_address(host)
    else:
        assert parsed_host == host
    assert (parsed_port, parsed_path) == (port, path)


async def test_resolve_address() -> None:
    assert await utils.resolve_address("127.0.0.1", 4433) == ("127.0.0.1", 4433)
    with pytest.raises(ConfigurationError):
        await utils.resolve_address("no-such-host.invalid", 1)


# --- conversions, formatting, ids --------------------------------------------------------


def test_ensure_bytes_and_str() -> None:
    assert utils.ensure_bytes("héllo") == "héllo".encode()
    assert utils.ensure_bytes(b"x") == b"x"
    assert utils.ensure_bytes(bytearray(b"ab")) == b"ab"
    assert utils.ensure_bytes(memoryview(b"cd")) == b"cd"
    assert utils.ensure_str(b"h\xc3\xa9") == "hé"
    assert utils.ensure_str("s") == "s"
    assert utils.ensure_str("é".encode("latin-1"), "latin-1") == "é"
    with pytest.raises(TypeError):
        utils.ensure_bytes(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        utils.ensure_str(None)  # type: ignore[arg-type]


@given(st.text())
def test_ensure_round_trip(text: str) -> None:
    assert utils.ensure_str(utils.ensure_bytes(text)) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"),
     (3 * 1024**4, "3.0 TiB"), (-2048, "-2.0 KiB")],
)
def test_format_bytes(value: int, expected: str) -> None:
    assert utils.format_bytes(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.00025, "250.0us"), (0.0125, "12.5ms"), (3.2, "3.20s"), (125, "2m 5s"), (3723, "1h 2m 3s"), (-1.5, "-1.50s")],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert utils.format_duration(seconds) == expected


def test_format_timestamp() -> None:
    assert utils.format_timestamp(0) == "1970-01-01T00:00:00+00:00"


def test_calculate_checksum() -> None:
    assert utils.calculate_checksum(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert utils.calculate_checksum("abc", "md5") == hashlib.md5(b"abc").hexdigest()
    with pytest.raises(ConfigurationError):
        utils.calculate_checksum(b"x", "nope")


def test_chunked_read() -> None:
    assert list(utils.chunked_read(b"abcdefg", 3)) == [b"abc", b"def", b"g"]
    assert list(utils.chunked_read(b"", 3)) == []
    with pytest.raises(ValueError):
        list(utils.chunked_read(b"x", 0))


def test_merge_configs_is_recursive_and_pure() -> None:
    base = {"a": 1, "nested": {"x": 1, "y": 2}}
    merged = utils.merge_configs(base, {"nested": {"y": 3}, "b": 2})
    assert merged == {"a": 1, "b": 2, "nested": {"x": 1, "y": 3}}
    assert base == {"a": 1, "nested": {"x": 1, "y": 2}}


def test_generated_ids_are_unique() -> None:
    for generate in (utils.generate_session_id, utils.generate_connection_id, utils.generate_request_id):
        ids = {generate() for _ in range(200)}
        assert len(ids) == 200
        assert all(isinstance(i, str) and i for i in ids)


def test_validators() -> None:
    utils.validate_port(1)
    utils.validate_port(65535)
    for bad in (0, 65536, "80", True):
        with pytest.raises(ConfigurationError):
            utils.validate_port(bad)  # type: ignore[arg-type]
    utils.validate_stream_id(0)
    utils.validate_stream_id(2**62 - 1)
    with pytest.raises(ValueError):
        utils.validate_stream_id(2**62)
    with pytest.raises(TypeError):
        utils.validate_stream_id("1")  # type: ignore[arg-type]
    utils.validate_session_id("abc")
    with pytest.raises(ValueError):
        utils.validate_session_id("")


# --- logging and timing ------------------------------------------------------------------


def test_get_logger_namespacing() -> None:
    assert utils.get_logger("client").name == "pywebtransport.client"
    assert utils.get_logger("pywebtransport.server").name == "pywebtransport.server"
    assert utils.get_logger("pywebtransport").name == "pywebtransport"


def test_setup_logging_is_idempotent() -> None:
    name = "pywebtransport.test_setup_logging"
    logger = utils.setup_logging("debug", logger_name=name)
    utils.setup_logging(logging.WARNING, logger_name=name, format_string="%(message)s")
    assert logger.level == logging.WARNING
    assert len(logger.handlers) == 1
    with pytest.raises(ConfigurationError):
        utils.setup_logging("LOUD", logger_name=name)
    logger.handlers.clear()


def test_timer() -> None:
    timer = utils.Timer("t")
    assert timer.elapsed == 0.0
    with pytest.raises(RuntimeError):
        timer.stop()
    with timer:
        pass
    first = timer.elapsed
    assert first >= 0 and timer.elapsed == first  # frozen once stopped
    assert "t" in repr(timer)


async def test_timer_async_context() -> None:
    async with utils.Timer() as timer:
        await asyncio.sleep(0.01)
    assert timer.elapsed >= 0.009


async def test_run_with_timeout() -> None:
    assert await utils.run_with_timeout(asyncio.sleep(0, "ok"), 1) == "ok"
    with pytest.raises(TimeoutError) as info:
        await utils.run_with_timeout(asyncio.sleep(1), 0.01, operation="nap")
    assert info.value.operation == "nap" and info.value.timeout_duration == 0.01


async def test_wait_for_condition() -> None:
    state = {"n": 0}

    def ready() -> bool:
        state["n"] += 1
        return state["n"] >= 3

    await utils.wait_for_condition(ready, timeout=1, interval=0.001)
    assert state["n"] == 3
    with pytest.raises(TimeoutError):
        await utils.wait_for_condition(lambda: False, timeout=0.02, interval=0.005)
