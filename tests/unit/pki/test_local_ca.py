"""The CA that signs chargers' certificates: generated once with a private key only the owner reads, reused at
the next start, and refusing every CSR a charger must not get signed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from csms.config import ConfigError, parse_config
from csms.pki import LocalCA, certificate_hash_data


def csr(cn: str, key: ec.EllipticCurvePrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    req = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return req.public_bytes(serialization.Encoding.PEM).decode()


def test_the_local_ca_is_made_on_first_use_and_reused(tmp_path: Path) -> None:
    ca = LocalCA(local_dir=tmp_path / "ca")
    assert not (tmp_path / "ca").exists()  # nothing written until a certificate is needed
    pem = ca.ca_certificate_pem()
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert LocalCA(local_dir=tmp_path / "ca").ca_certificate_pem() == pem  # a restart keeps the same CA


def test_a_signed_certificate_carries_the_csr_key_and_verifies_against_the_ca(tmp_path: Path) -> None:
    ca = LocalCA(local_dir=tmp_path, validity_days=30)
    key = ec.generate_private_key(ec.SECP256R1())
    chain = x509.load_pem_x509_certificates(ca.sign_csr(csr("CP-7", key), "CP-7").encode())
    leaf, root = chain
    leaf.verify_directly_issued_by(root)
    assert root.public_bytes(serialization.Encoding.PEM).decode() == ca.ca_certificate_pem()
    assert leaf.public_key() == key.public_key()
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 30
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize("pem, why", [
    ("garbage", "not a PEM certificate signing request"),
    (csr("CP-OTHER"), "common name is 'CP-OTHER'"),
])
def test_csrs_a_charger_must_not_get_signed_are_refused(tmp_path: Path, pem: str, why: str) -> None:
    ca = LocalCA(local_dir=tmp_path)
    assert why in (ca.check_csr(pem, "CP-7") or "")
    with pytest.raises(ValueError, match=why):
        ca.sign_csr(pem, "CP-7")
    assert not (tmp_path / "ca.pem").exists()  # refused before the CA was even needed


def test_a_csr_whose_signature_does_not_hold_is_refused(tmp_path: Path) -> None:
    good = x509.load_pem_x509_csr(csr("CP-7").encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    assert "signature" in (LocalCA(local_dir=tmp_path).check_csr(tampered, "CP-7") or "")


def test_the_operators_ca_files_are_used_and_checked_at_start(tmp_path: Path) -> None:
    own = LocalCA(local_dir=tmp_path / "own")
    own.ca_certificate_pem()
    ca = LocalCA(cert_file=tmp_path / "own" / "ca.pem", key_file=tmp_path / "own" / "ca.key",
                 local_dir=tmp_path / "unused")
    assert ca.ca_certificate_pem() == own.ca_certificate_pem()
    assert not (tmp_path / "unused").exists()
    (tmp_path / "broken.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="cannot read the CA"):
        LocalCA(cert_file=tmp_path / "broken.pem", key_file=tmp_path / "own" / "ca.key")


def test_config_wants_both_ca_files_or_neither(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    with pytest.raises(ConfigError, match="ca_key_file"):
        parse_config(f"certificates: {{ca_cert_file: {tmp_path / 'ca.pem'}}}", env={})
    with pytest.raises(ConfigError, match="pki_backend"):
        parse_config("certificates: {pki_backend: 'not a module path'}", env={})


def test_hash_data_names_a_root_by_its_own_name_and_key(tmp_path: Path) -> None:
    pem = LocalCA(local_dir=tmp_path).ca_certificate_pem()
    h = certificate_hash_data(pem)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert h.serial_number == format(cert.serial_number, "x")
    assert len(h.issuer_name_hash) == len(h.issuer_key_hash) == 64
    assert certificate_hash_data(pem, algorithm="SHA512").issuer_name_hash != h.issuer_name_hash


def test_a_pki_backend_that_cannot_be_loaded_is_a_config_error() -> None:
    from csms.app import load_pki_backend

    with pytest.raises(ConfigError, match="certificates.pki_backend: cannot load 'csms.no_such_module:make'"):
        load_pki_backend("csms.no_such_module:make")
    assert isinstance(load_pki_backend("builtins:object"), object)
