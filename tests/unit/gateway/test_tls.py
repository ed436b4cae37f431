from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from phoenix.errors import GatewayError
from phoenix.gateway.tls import LocalCA, cert_sans, default_ca_dir, san_entries, wanted_sans


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


NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_the_ca_certificate_is_a_ten_year_signing_ca_named_phoenix(tmp_path: Path) -> None:
    """What clients check before they trust the gateway: a CA that may sign certificates
    (and CRLs), no more, for ten years from a few minutes before it was made."""
    ca = LocalCA.load_or_create(tmp_path / "ca", now=NOW)
    cert = ca.cert
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Phoenix Local CA"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Phoenix"
    start = NOW - dt.timedelta(minutes=5)
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + dt.timedelta(days=3650)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is True and basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    wanted = {"digital_signature", "key_cert_sign", "crl_sign"}
    for flag in [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ]:
        assert getattr(usage.value, flag) is (flag in wanted), flag
    key_id = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not key_id.critical
    assert key_id.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    cert.verify_directly_issued_by(cert)  # self-signed with its own key
    assert (tmp_path / "ca" / "ca.crt").read_bytes() == ca.cert_pem
    assert stat.S_IMODE((tmp_path / "ca" / "ca.crt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700


def test_a_leaf_is_a_one_year_server_certificate_chained_to_the_ca(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path, now=NOW)
    pair = ca.issue(["Api.Lab.test", "10.0.0.153"], now=NOW)
    cert = _cert(pair.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "api.lab.test"
    assert cert.issuer == ca.cert.subject
    start = NOW - dt.timedelta(minutes=5)
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + dt.timedelta(days=365)
    assert not cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert not cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).critical
    subject_id = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not subject_id.critical
    assert subject_id.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    authority = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not authority.critical
    ca_id = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.value.key_identifier == ca_id.digest
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    cert.verify_directly_issued_by(ca.cert)
    key = load_pem_private_key(pair.key_pem, None)
    assert key.public_key() == cert.public_key()
    assert b"ENCRYPTED" not in pair.key_pem and pair.key_pem.startswith(b"-----BEGIN PRIVATE KEY")


def test_the_common_name_is_the_first_name_up_to_64_characters() -> None:
    """X.509 caps the CN at 64: a longer first name leaves it generic, the SANs hold all."""

    ca = LocalCA.ephemeral()

    def common_name(names: list[str]) -> str:
        cert = _cert(ca.issue(names).cert_pem)
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    fits = "a" * 59 + ".test"  # 64 characters
    assert common_name([fits, "b.test"]) == fits
    long = "a" * 60 + ".test"  # 65
    assert common_name([long]) == "Phoenix gateway"
    assert long in cert_sans(_cert(ca.issue([long]).cert_pem))


def test_a_certificate_needs_a_name() -> None:
    with pytest.raises(GatewayError, match="at least one name"):
        LocalCA.ephemeral().issue(["", "  "])


def test_sans_are_trimmed_lowercased_deduplicated_in_order() -> None:
    entries = san_entries([" B.test ", "", "10.0.0.1", "b.test", "a.test", "10.0.0.1"])
    assert entries == [
        x509.DNSName("b.test"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.DNSName("a.test"),
    ]
    assert wanted_sans(["B.test", "::1"]) == {"b.test", "::1"}


def test_a_certificate_without_sans_has_none() -> None:
    assert cert_sans(LocalCA.ephemeral().cert) == set()


def test_a_read_only_ca_writes_nothing(tmp_path: Path) -> None:
    """Planning and linting open the CA with persist=False: no key may be left behind."""
    directory = tmp_path / "state" / "gateway-ca"
    ca = LocalCA.open(directory, persist=False)
    ca.leaf("api", ["a.test"])
    assert not (tmp_path / "state").exists()
    # with a stored CA: that one is used, its leaves reused, nothing new written
    stored = LocalCA.load_or_create(directory)
    pair = stored.leaf("api", ["a.test"])
    before = sorted(p.name for p in directory.rglob("*"))
    reader = LocalCA.open(directory, persist=False)
    assert reader.cert_pem == stored.cert_pem and not reader.persist
    assert reader.leaf("api", ["a.test"]) == pair
    fresh = reader.leaf("web", ["w.test"])
    assert reader.signed_this(_cert(fresh.cert_pem))
    assert sorted(p.name for p in directory.rglob("*")) == before
    assert LocalCA.open(directory, persist=True).cert_pem == stored.cert_pem


def test_an_unreadable_stored_leaf_is_replaced(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    first = ca.leaf("api", ["a.test"])
    (tmp_path / "leaves" / "api.crt").write_bytes(b"not a certificate")
    again = ca.leaf("api", ["a.test"])
    assert again != first and ca.signed_this(_cert(again.cert_pem))
    assert (tmp_path / "leaves" / "api.crt").read_bytes() == again.cert_pem
    assert (tmp_path / "leaves" / "api.key").read_bytes() == again.key_pem
    assert stat.S_IMODE((tmp_path / "leaves" / "api.crt").stat().st_mode) == 0o644


def test_a_leaf_without_its_key_is_issued_again(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    first = ca.leaf("api", ["a.test"])
    (tmp_path / "leaves" / "api.key").unlink()
    assert ca.leaf("api", ["a.test"]) != first


def test_a_ca_with_one_file_missing_is_made_again(tmp_path: Path) -> None:
    first = LocalCA.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "ca.crt").unlink()
    second = LocalCA.load_or_create(tmp_path / "ca")
    assert second.cert_pem != first.cert_pem
    assert LocalCA.load_or_create(tmp_path / "ca").cert_pem == second.cert_pem


def test_broken_ca_files_are_refused_with_the_path(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    LocalCA.load_or_create(directory)
    good = (directory / "ca.crt").read_bytes()
    (directory / "ca.crt").write_bytes(b"garbage")
    with pytest.raises(GatewayError, match=f"{directory}: unreadable CA files"):
        LocalCA.open(directory, persist=False)
    (directory / "ca.crt").write_bytes(good)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "ca.key").write_bytes(pem)
    with pytest.raises(GatewayError, match=f"{directory / 'ca.key'}: expected an EC private key"):
        LocalCA.open(directory, persist=True)


def test_a_certificate_with_the_cas_name_but_another_key_is_not_the_cas() -> None:
    ours, other = LocalCA.ephemeral(), LocalCA.ephemeral()
    assert ours.cert.subject == other.cert.subject  # every Phoenix CA has the same name
    foreign = _cert(other.issue(["a.test"]).cert_pem)
    assert not ours.signed_this(foreign)
    assert ours.reissue_reason(foreign, ["a.test"]) == "not signed by the current CA"
    own = _cert(ours.issue(["a.test"]).cert_pem)
    assert ours.reissue_reason(own, ["A.test"]) is None
    assert ours.reissue_reason(own, ["a.test", "b.test"]) == "SANs changed"
    expiry = own.not_valid_after_utc
    assert ours.reissue_reason(own, ["a.test"], now=expiry - dt.timedelta(days=30)) is None
    later = expiry - dt.timedelta(days=30) + dt.timedelta(seconds=1)
    assert ours.reissue_reason(own, ["a.test"], now=later) == "expires within 30 days"


def test_the_default_ca_dir_is_in_the_state_dir(tmp_path: Path) -> None:
    assert default_ca_dir(tmp_path) == tmp_path / "gateway-ca"


def test_the_ca_and_its_leaves_share_one_lock_and_private_dirs(tmp_path: Path) -> None:
    """One lock file in the CA's directory serialises making the CA and its leaves (two
    converges at once must not make two CAs); the leaves' directory is the owner's only."""
    ca = LocalCA.load_or_create(tmp_path / "ca")
    assert (tmp_path / "ca" / ".lock").exists()
    ca.leaf("api", ["a.test"])
    assert stat.S_IMODE((tmp_path / "ca" / "leaves").stat().st_mode) == 0o700


def test_a_reissued_leaf_certificate_is_readable_whatever_mode_it_had(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    ca.leaf("api", ["a.test"])
    crt = tmp_path / "leaves" / "api.crt"
    crt.chmod(0o600)
    ca.leaf("api", ["b.test"])  # new SANs: issued and written again
    assert stat.S_IMODE(crt.stat().st_mode) == 0o644
