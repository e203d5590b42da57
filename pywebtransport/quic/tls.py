"""Peer certificate verification, done in Python on the event loop.

The pinned msquic (2.5, quictls) checks a server's chain but never its host name,
and adds a CA file to the system roots instead of using it alone. So whenever a
peer certificate must be checked, the shim asks msquic to skip its own
validation and hand over the DER certificate and chain
(``PWT_EV_CONN_PEER_CERTIFICATE``); the handshake waits until
:func:`verify_peer_certificate`'s verdict is passed back.

Verification uses `cryptography`'s RFC 5280 path validation and its server-name
matching (DNS and IP subjectAltNames, RFC 6125 left-most-label wildcards; the
common name is never used).  The trust anchors are ``cafile`` alone when it is
given, otherwise the system store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` or
OpenSSL's default paths).  Two relaxations of the Web PKI profile keep private
CAs working: the authority key identifier may be absent, and a client
certificate need not carry a subjectAltName.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import verification

if TYPE_CHECKING:
    from .config import QuicConfiguration

__all__ = ["PeerCertificate", "Verdict", "verify_peer_certificate"]

# TLS alerts (RFC 8446 §6.2) sent to a peer whose certificate we reject.
ALERT_BAD_CERTIFICATE = 42
ALERT_CERTIFICATE_EXPIRED = 45
ALERT_UNKNOWN_CA = 48
ALERT_CERTIFICATE_REQUIRED = 116


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The certificate a peer presented, after it was verified.

    ``der`` is the leaf certificate; ``chain`` the DER certificates msquic collected
    with it (the leaf first, then issuers; may be empty).  ``subject`` and ``issuer``
    are RFC 4514 strings, ``dns_names`` and ``ip_addresses`` the subjectAltName
    entries, ``sha256`` the SHA-256 digest of ``der`` (what
    ``server_certificate_hashes`` pins).
    """

    der: bytes
    chain: tuple[bytes, ...]
    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    serial_number: int
    not_valid_before: datetime.datetime
    not_valid_after: datetime.datetime
    sha256: bytes

    @classmethod
    def from_der(cls, der: bytes, chain: tuple[bytes, ...] = ()) -> "PeerCertificate":
        """Parse a DER certificate (raises ValueError if it is not one)."""
        return _describe(x509.load_der_x509_certificate(der), der, chain)

    def to_x509(self) -> x509.Certificate:
        """The certificate as a `cryptography.x509.Certificate`."""
        return x509.load_der_x509_certificate(self.der)

    @property
    def fingerprint(self) -> str:
        """SHA-256 digest of the DER certificate as lower-case hex."""
        return self.sha256.hex()


def _describe(cert: x509.Certificate, der: bytes, chain: tuple[bytes, ...]) -> PeerCertificate:
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except (x509.ExtensionNotFound, ValueError):
        pass
    cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    return PeerCertificate(
        der=der,
        chain=chain,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=cn if isinstance(cn, str) else None,
        dns_names=dns,
        ip_addresses=ips,
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).digest(),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of a verification: accepted (``certificate`` may be None for a client
    that sent none where that is allowed) or rejected with ``error`` and a TLS alert."""

    accepted: bool
    certificate: PeerCertificate | None = None
    error: str = ""
    alert: int = ALERT_BAD_CERTIFICATE


# -- trust stores -------------------------------------------------------------

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
_SHA256 = hashes.SHA256()
_stores: "OrderedDict[tuple[Any, ...], verification.Store]" = OrderedDict()
_STORES_MAX = 8


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every parseable certificate of a PEM bundle (a bad entry is skipped)."""
    certs: list[x509.Certificate] = []
    start = data.find(_PEM_BEGIN)
    while start >= 0:
        end = data.find(_PEM_END, start)
        if end < 0:
            break
        end += len(_PEM_END)
        try:
            with warnings.catch_warnings():  # odd old roots (e.g. negative serials)
                warnings.simplefilter("ignore")
                certs.append(x509.load_pem_x509_certificate(data[start:end]))
        except ValueError:
            pass
        start = data.find(_PEM_BEGIN, end)
    return certs


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _system_sources() -> tuple[list[str], list[str]]:
    """Files and directories of the system trust store, as OpenSSL would find them."""
    paths = ssl.get_default_verify_paths()
    files = [p for p in (paths.cafile,) if p]
    dirs = [p for p in (paths.capath,) if p and os.path.isdir(p)]
    return files, dirs


def _load_store(cafile: str | None) -> verification.Store:
    return _load_store_stamped(cafile)[0]


def _load_store_stamped(cafile: str | None) -> tuple[verification.Store, tuple[Any, ...]]:
    """The trust store and a stamp (its files and their mtimes) that changes with them."""
    if cafile is not None:
        sources: tuple[list[str], list[str]] = ([cafile], [])
    else:
        sources = _system_sources()
    files, dirs = sources
    stamp: list[Any] = []
    for path in files + dirs:
        try:
            stamp.append((path, os.stat(path).st_mtime_ns))
        except OSError:
            stamp.append((path, None))
    key = (cafile is None, tuple(stamp))
    store = _stores.get(key)
    if store is not None:
        _stores.move_to_end(key)
        return store, key
    certs: dict[bytes, x509.Certificate] = {}
    for path in files:
        for cert in _pem_certificates(_read(path)):
            certs.setdefault(cert.fingerprint(_SHA256), cert)
    if not files:  # only a hashed directory: read every certificate file in it
        for directory in dirs:
            for name in sorted(os.listdir(directory)):
                for cert in _pem_certificates(_read(os.path.join(directory, name))):
                    certs.setdefault(cert.fingerprint(_SHA256), cert)
    if not certs and cafile is None:
        certs = {c.fingerprint(_SHA256): c for c in _certifi_roots()}
    if not certs:
        where = cafile if cafile is not None else "the system trust store"
        raise ValueError(f"no usable CA certificate in {where}")
    store = verification.Store(list(certs.values()))
    _stores[key] = store
    while len(_stores) > _STORES_MAX:
        _stores.popitem(last=False)
    return store, key


def _certifi_roots() -> list[x509.Certificate]:
    try:
        import certifi  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return []
    return _pem_certificates(_read(str(certifi.where())))


# -- verification ---------------------------------------------------------------


def _policies(client_certificate: bool) -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    agnostic = verification.Criticality.AGNOSTIC
    ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.AuthorityKeyIdentifier, agnostic, None
    )
    ee = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.AuthorityKeyIdentifier, agnostic, None
    )
    if client_certificate:
        ee = ee.may_be_present(x509.SubjectAlternativeName, agnostic, None)
    return ca, ee


def _subject_for(name: str) -> x509.DNSName | x509.IPAddress:
    host = name.strip().strip("[]")
    try:
        return x509.IPAddress(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    host = host.rstrip(".").lower()
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    return x509.DNSName(host)


def _names(cert: PeerCertificate) -> str:
    names = [*cert.dns_names, *cert.ip_addresses]
    if not names:
        return "no subjectAltName at all"
    return ", ".join(repr(n) for n in names)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _pkcs7_certificates(blob: bytes) -> list[bytes]:
    """The DER certificates of a PKCS#7 SignedData blob.

    msquic writes the chain with i2d_PKCS7, whose SET OF is not sorted as DER
    requires, so `cryptography` warns on it; the structure is simple enough to walk.
    """
    _, start, _ = _tlv(blob, 0)  # ContentInfo SEQUENCE
    _, pos, end = _tlv(blob, start)  # contentType OID
    tag, start, _ = _tlv(blob, end)  # [0] EXPLICIT content
    if tag != 0xA0:
        raise ValueError("not a PKCS#7 SignedData")
    _, pos, signed_end = _tlv(blob, start)  # SignedData SEQUENCE
    for _ in range(3):  # version, digestAlgorithms, contentInfo
        _, _, pos = _tlv(blob, pos)
    certs: list[bytes] = []
    if pos < signed_end:
        tag, pos, certs_end = _tlv(blob, pos)
        if tag == 0xA0:  # [0] IMPLICIT certificates
            while pos < certs_end:
                _, _, end = _tlv(blob, pos)
                certs.append(blob[pos:end])
                pos = end
    return certs


def _parse_chain(leaf_der: bytes, chain_der: bytes) -> tuple[tuple[bytes, ...], list[x509.Certificate]]:
    if not chain_der:
        return (), []
    try:
        ders = tuple(_pkcs7_certificates(chain_der))
    except ValueError:
        return (), []
    intermediates: list[x509.Certificate] = []
    for der in ders:
        if der != leaf_der:
            try:
                intermediates.append(x509.load_der_x509_certificate(der))
            except ValueError:
                pass
    return ders, intermediates


def _time_problem(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None


# Accepted verdicts, so repeated handshakes with the same peer skip the signature checks
# (about 1 ms of loop time each on a slow machine). An entry lives at most _CACHE_TTL and
# never past the certificate's expiry; the key holds everything the verdict depends on,
# including the trust store's files and their modification times.
_accepted: "OrderedDict[tuple[Any, ...], tuple[float, Verdict]]" = OrderedDict()
_CACHE_MAX = 256
_CACHE_TTL = 300.0


def verify_peer_certificate(
    config: "QuicConfiguration", leaf_der: bytes, chain_der: bytes, server_name: str | None
) -> Verdict:
    """Decide on the certificate a peer presented (``leaf_der`` empty = none).

    See :func:`_verify` for the rules; accepted verdicts are cached briefly.
    """
    if not leaf_der:
        return _verify(config, leaf_der, chain_der, server_name, None)
    store: verification.Store | None = None
    stamp: tuple[Any, ...] = ()
    if not (config.is_client and config.certificate_hashes):
        try:
            store, stamp = _load_store_stamped(config.cafile)
        except ValueError as exc:
            return Verdict(False, error=str(exc), alert=ALERT_UNKNOWN_CA)
    key = (
        config.is_client,
        config.verifies_peer,
        config.check_hostname,
        tuple(config.certificate_hashes),
        config.cafile,
        stamp,
        server_name,
        leaf_der,
        chain_der,
    )
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    hit = _accepted.get(key)
    if hit is not None:
        if hit[0] > now:
            _accepted.move_to_end(key)
            return hit[1]
        del _accepted[key]
    verdict = _verify(config, leaf_der, chain_der, server_name, store)
    if verdict.accepted and verdict.certificate is not None:
        expires = min(now + _CACHE_TTL, verdict.certificate.not_valid_after.timestamp())
        _accepted[key] = (expires, verdict)
        while len(_accepted) > _CACHE_MAX:
            _accepted.popitem(last=False)
    return verdict


def _verify(
    config: "QuicConfiguration",
    leaf_der: bytes,
    chain_der: bytes,
    server_name: str | None,
    store: verification.Store | None,
) -> Verdict:
    """Decide on the certificate a peer presented (``leaf_der`` empty = none).

    A client checks the server: against ``certificate_hashes`` when given (SHA-256 of
    the DER certificate and its validity period, nothing else, like browsers'
    ``serverCertificateHashes``), else the chain against the trust anchors and, with
    ``check_hostname``, ``server_name`` against the subjectAltNames.  A server checks
    a client certificate's chain; a missing one is accepted unless ``verify_peer``.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    if not leaf_der:
        if config.is_client:
            return Verdict(False, error="the server sent no certificate", alert=ALERT_CERTIFICATE_REQUIRED)
        if config.verifies_peer:
            return Verdict(
                False, error="a client certificate is required and none was sent",
                alert=ALERT_CERTIFICATE_REQUIRED,
            )
        return Verdict(True)
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        chain, intermediates = _parse_chain(leaf_der, chain_der)
        described = _describe(leaf, leaf_der, chain)
    except ValueError as exc:
        return Verdict(False, error=f"the peer's certificate cannot be parsed: {exc}")
    who = server_name if config.is_client and server_name else "the peer"

    if config.is_client and config.certificate_hashes:
        if described.sha256 not in set(config.certificate_hashes):
            return Verdict(
                False,
                error=(
                    f"certificate of {who} (sha256 {described.fingerprint}) is not one of "
                    "server_certificate_hashes"
                ),
            )
        problem = _time_problem(leaf, now)
        if problem:
            return Verdict(
                False, error=f"pinned certificate of {who} {problem}", alert=ALERT_CERTIFICATE_EXPIRED
            )
        return Verdict(True, described)

    if store is None:
        try:
            store = _load_store(config.cafile)
        except ValueError as exc:
            return Verdict(False, error=str(exc), alert=ALERT_UNKNOWN_CA)
    anchors = f"the CAs in {config.cafile}" if config.cafile else "the system trust store"
    ca_policy, ee_policy = _policies(client_certificate=not config.is_client)
    builder = (
        verification.PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    )

    if not config.is_client:
        try:
            builder.build_client_verifier().verify(leaf, intermediates)
        except verification.VerificationError as exc:
            return _chain_failure("client certificate", described, leaf, now, anchors, exc)
        return Verdict(True, described)

    # A verifier for a name the certificate itself carries checks the chain alone.
    chain_verifier = _chain_verifier(builder, described)
    if not config.check_hostname:
        if chain_verifier is None:
            return Verdict(False, error=f"certificate of {who} has no usable subjectAltName")
        try:
            chain_verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            return _chain_failure(f"certificate of {who}", described, leaf, now, anchors, exc)
        return Verdict(True, described)
    if not server_name:
        return Verdict(False, error="no server name to check the certificate against")
    mismatch = Verdict(
        False,
        error=(
            f"certificate verification failed: the certificate is not valid for "
            f"{server_name!r}; it names {_names(described)}"
        ),
    )
    try:
        verifier = builder.build_server_verifier(_subject_for(server_name))
    except ValueError:
        # A host name `cryptography` will not match (an underscore, as in container
        # service names): check the chain alone, and the name by RFC 6125 rules here.
        if chain_verifier is None:
            return Verdict(False, error=f"cannot check a certificate against the name {server_name!r}")
        try:
            chain_verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            return _chain_failure(f"certificate of {who}", described, leaf, now, anchors, exc)
        return Verdict(True, described) if _dns_name_matches(server_name, described.dns_names) else mismatch
    try:
        verifier.verify(leaf, intermediates)
        return Verdict(True, described)
    except verification.VerificationError as exc:
        failure = exc
    if chain_verifier is not None:
        try:  # is it the chain, or only the name?
            chain_verifier.verify(leaf, intermediates)
        except verification.VerificationError:
            pass
        else:
            return mismatch
    return _chain_failure(f"certificate of {who}", described, leaf, now, anchors, failure)


def _chain_verifier(
    builder: verification.PolicyBuilder, cert: PeerCertificate
) -> verification.ServerVerifier | None:
    """A server verifier for the first subjectAltName of `cert` that `cryptography` accepts."""
    candidates: list[x509.DNSName | x509.IPAddress] = []
    candidates += [x509.DNSName(n.lower()) for n in cert.dns_names if not n.startswith("*.")]
    # a wildcard: any one label under it matches
    candidates += [x509.DNSName("wildcard-check" + n[1:].lower()) for n in cert.dns_names if n.startswith("*.")]
    candidates += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in cert.ip_addresses]
    for candidate in candidates:
        try:
            return builder.build_server_verifier(candidate)
        except ValueError:
            continue
    return None


def _dns_name_matches(host: str, names: tuple[str, ...]) -> bool:
    """RFC 6125 §6.4: exact match, or a wildcard as the whole left-most label."""
    host = host.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return False
    for name in names:
        name = name.rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and name.count(".") >= 2:
            label, _, rest = host.partition(".")
            if label and rest == name[2:]:
                return True
    return False


def _chain_failure(
    what: str,
    cert: PeerCertificate,
    leaf: x509.Certificate,
    now: datetime.datetime,
    anchors: str,
    exc: verification.VerificationError,
) -> Verdict:
    problem = _time_problem(leaf, now)
    if problem:
        return Verdict(
            False,
            error=f"certificate verification failed: {what} ({cert.subject}) {problem}",
            alert=ALERT_CERTIFICATE_EXPIRED,
        )
    detail = str(exc)
    if "candidates exhausted" in detail and "interior errors" in detail:
        detail = "no chain to a trusted CA"
    return Verdict(
        False,
        error=(
            f"certificate verification failed: {what} ({cert.subject}, issued by {cert.issuer}) "
            f"is not trusted by {anchors}: {detail}"
        ),
        alert=ALERT_UNKNOWN_CA,
    )
