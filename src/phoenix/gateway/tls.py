"""The gateway's local CA and leaf certificates (kept on the host, shipped in the bundle).

The CA lives in a state dir on the host (`ca.key` 0600, never printed; `ca.crt` is what
clients trust: `phoenix gateway ca`). Leaf certificates carry a SAN for every name they
serve (DNS names and IP addresses) and are kept as they are unless their SANs change, they
expire within 30 days, or they were not signed by the current CA: re-rendering an unchanged
inventory yields byte-identical certificates, so a redeploy changes nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from filelock import FileLock

from phoenix.errors import GatewayError, PhoenixError
from phoenix.files import make_owned_dir, read_state, trusted_owner, write_atomic

CA_DAYS = 3650
MAX_COMMON_NAME = 64
LEAF_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)
CA_CERT = "ca.crt"
CA_KEY = "ca.key"


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def san_entries(names: Sequence[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses, lower-cased, deduplicated, in a stable order."""
    out: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip().lower()
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def cert_sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {str(n).lower() for n in ext.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return names


def wanted_sans(names: Sequence[str]) -> set[str]:
    return {
        str(n.value) if isinstance(n, x509.IPAddress) else str(n.value).lower()
        for n in san_entries(names)
    }


class LocalCA:
    """A CA in `directory`; created on first use, then reused for every leaf.

    A CA opened with `persist=False` (planning, linting, rendering for inspection) writes
    nothing: it reads what exists and makes in memory what does not, so a read-only
    command never leaves keys behind.
    """

    def __init__(
        self,
        directory: Path,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        persist: bool = True,
    ):
        self.directory = directory
        self.cert = cert
        self._key = key
        self.persist = persist

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def open(cls, directory: Path, persist: bool, now: dt.datetime | None = None) -> LocalCA:
        """`load_or_create`, or with `persist=False` the stored CA (read only) when there is
        one and an in-memory one when there is not."""
        if persist:
            return cls.load_or_create(directory, now)
        loaded = cls._load(directory)
        if loaded is not None:
            return cls(directory, *loaded, persist=False)
        return cls(directory, *cls._new(now), persist=False)

    @classmethod
    def ephemeral(cls) -> LocalCA:
        """A CA in memory only, for a planner with no state dir (tests, benches)."""
        return cls(Path("/dev/null/phoenix-ca"), *cls._new(), persist=False)

    @classmethod
    def _load(cls, directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if not (os.path.lexists(cert_path) and os.path.lexists(key_path)):
            return None
        try:
            trusted_owner(directory, os.stat(directory))
            cert = x509.load_pem_x509_certificate(read_state(cert_path))
            key = serialization.load_pem_private_key(read_state(key_path), None)
        except PhoenixError as exc:
            raise GatewayError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise GatewayError(f"{directory}: unreadable CA files: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise GatewayError(f"{key_path}: expected an EC private key")
        if cert.public_key() != key.public_key():
            raise GatewayError(
                f"{key_path} is not the key of {cert_path}: a CA whose key does not match its "
                "certificate cannot sign the gateway's certificates (remove both to make a new CA)"
            )
        return cert, key

    @classmethod
    def load_or_create(cls, directory: Path, now: dt.datetime | None = None) -> LocalCA:
        make_owned_dir(directory.parent)
        directory.mkdir(exist_ok=True, mode=0o700)
        with FileLock(str(directory / ".lock")):
            cert_path, key_path = directory / CA_CERT, directory / CA_KEY
            loaded = cls._load(directory)
            if loaded is not None:
                if key_path.stat().st_mode & 0o077:
                    os.chmod(key_path, 0o600)
                return cls(directory, *loaded)
            cert, key = cls._new(now)
            write_atomic(key_path, _key_pem(key), 0o600)
            write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
            return cls(directory, cert, key)

    @staticmethod
    def _new(
        now: dt.datetime | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        start = (now or _now()) - dt.timedelta(minutes=5)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Phoenix"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Phoenix Local CA"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def signed_this(self, cert: x509.Certificate) -> bool:
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def reissue_reason(
        self, cert: x509.Certificate, names: Sequence[str], now: dt.datetime | None = None
    ) -> str | None:
        """Why `cert` must be replaced for `names`, or None to keep it."""
        if cert_sans(cert) != wanted_sans(names):
            return "SANs changed"
        if cert.not_valid_after_utc - (now or _now()) < RENEW_BEFORE:
            return "expires within 30 days"
        if not self.signed_this(cert):
            return "not signed by the current CA"
        return None

    def issue(self, names: Sequence[str], now: dt.datetime | None = None) -> CertPair:
        sans = san_entries(names)
        if not sans:
            raise GatewayError("a certificate needs at least one name")
        key = ec.generate_private_key(ec.SECP256R1())
        start = (now or _now()) - dt.timedelta(minutes=5)
        # X.509 caps the common name at 64 characters; clients match the SANs, which hold
        # every name at any length, so a longer first name just leaves the CN generic.
        first = str(sans[0].value)
        cn = first if len(first) <= MAX_COMMON_NAME else "Phoenix gateway"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def leaf(self, name: str, names: Sequence[str], now: dt.datetime | None = None) -> CertPair:
        """The leaf `name` for `names`: the stored one when still right, else a new one
        (stored only when this CA persists)."""
        leaves = self.directory / "leaves"
        if not self.persist:
            return self._stored_leaf(leaves, name, names, now) or self.issue(names, now)
        leaves.mkdir(exist_ok=True, mode=0o700)
        with FileLock(str(self.directory / ".lock")):
            pair = self._stored_leaf(leaves, name, names, now)
            if pair is not None:
                return pair
            pair = self.issue(names, now)
            write_atomic(leaves / f"{name}.key", pair.key_pem, 0o600)
            write_atomic(leaves / f"{name}.crt", pair.cert_pem, 0o644)
            return pair

    def _stored_leaf(
        self, leaves: Path, name: str, names: Sequence[str], now: dt.datetime | None
    ) -> CertPair | None:
        cert_path, key_path = leaves / f"{name}.crt", leaves / f"{name}.key"
        if not (cert_path.exists() and key_path.exists()):
            return None
        try:
            pair = CertPair(read_state(cert_path), read_state(key_path))
        except PhoenixError as exc:
            raise GatewayError(str(exc)) from None
        try:
            cert = x509.load_pem_x509_certificate(pair.cert_pem)
        except ValueError:
            return None
        return pair if self.reissue_reason(cert, names, now) is None else None


def default_ca_dir(state_dir: Path) -> Path:
    return state_dir / "gateway-ca"
