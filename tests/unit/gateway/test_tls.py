from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from phoenix.gateway.tls import LocalCA, cert_sans


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_created_once_with_private_key_0600(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca")
    key = tmp_path / "ca" / "ca.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in ca.cert_pem
    again = LocalCA.load_or_create(tmp_path / "ca")
    assert again.cert_pem == ca.cert_pem
    basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is True


def test_a_ca_key_left_readable_is_made_private_again(tmp_path: Path) -> None:
    LocalCA.load_or_create(tmp_path / "ca")
    key = tmp_path / "ca" / "ca.key"
    key.chmod(0o644)  # a restore or a copy lost the mode
    LocalCA.load_or_create(tmp_path / "ca")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_leaf_can_never_sign_certificates(tmp_path: Path) -> None:
    """A leaf's key sits on the gateway: it must not be a CA clients would trust."""
    cert = _cert(LocalCA.load_or_create(tmp_path).leaf("api", ["api.lab.test"]).cert_pem)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]


def test_leaf_has_every_name_as_san(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    pair = ca.leaf("api", ["API.lab.test", "10.0.0.153", "api.lab.test"])
    cert = _cert(pair.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.lab.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.153")]
    assert ca.signed_this(cert)
    assert stat.S_IMODE((tmp_path / "leaves" / "api.key").stat().st_mode) == 0o600


def test_leaf_kept_when_unchanged(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    first = ca.leaf("api", ["a.test", "b.test"])
    assert ca.leaf("api", ["b.test", "a.test"]) == first


def test_leaf_reissued_when_sans_change(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    first = ca.leaf("api", ["a.test"])
    second = ca.leaf("api", ["a.test", "c.test"])
    assert second != first
    assert cert_sans(_cert(second.cert_pem)) == {"a.test", "c.test"}


def test_leaf_reissued_within_30_days_of_expiry(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    first = ca.leaf("api", ["a.test"])
    expiry = _cert(first.cert_pem).not_valid_after_utc
    assert ca.leaf("api", ["a.test"], now=expiry - dt.timedelta(days=31)) == first
    renewed = ca.leaf("api", ["a.test"], now=expiry - dt.timedelta(days=29))
    assert renewed != first


def test_leaf_reissued_when_ca_changes(tmp_path: Path) -> None:
    old = LocalCA.load_or_create(tmp_path / "a")
    pair = old.leaf("api", ["a.test"])
    new = LocalCA.load_or_create(tmp_path / "b")
    assert new.reissue_reason(_cert(pair.cert_pem), ["a.test"]) == "not signed by the current CA"
