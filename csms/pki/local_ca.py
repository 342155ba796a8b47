"""The CA that signs the certificates chargers request for themselves (SignCertificate -> CertificateSigned).

Two ways to get one (config.yaml `certificates`):
* the operator's own CA: `ca_cert_file` + `ca_key_file` (PEM; the key unencrypted, readable by the CSMS only);
* the embedded default: a local CA generated on first use in `local_ca_dir` (`ca.pem`, `ca.key` mode 0600),
  then reused at every start. Generated lazily so that a CSMS whose chargers never ask writes nothing.

What is checked before signing (OCPP 2.0.1 A02/A03, 1.6 security whitepaper "Use case A02"): the CSR is a PEM
PKCS#10 request, its self-signature holds (the charger owns the key), and its subject CN is the charger's
identity (the CN is what profile 3 admits a connection by, so a charger must not get a certificate in another
charger's name). Issued certificates: the CSR's subject and key, the CA as issuer, `validity_days`, key usage
digitalSignature + keyAgreement, extended key usage clientAuth, SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.domain.certificates import CertificateHashData

log = logging.getLogger("csms.pki")

_HASHES = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}


def certificate_hash_data(cert_pem: str, issuer_pem: str | None = None,
                          algorithm: str = "SHA256") -> CertificateHashData:
    """OCPP CertificateHashData of a certificate: hashes of the issuer's DER name and of the issuer's public key
    (the BIT STRING content, as OCSP's issuerKeyHash), serial as lowercase hex. A root is its own issuer."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    issuer = x509.load_pem_x509_certificate(issuer_pem.encode()) if issuer_pem else cert
    h = _HASHES[algorithm]
    key_bits = issuer.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint) \
        if isinstance(issuer.public_key(), ec.EllipticCurvePublicKey) else \
        issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return CertificateHashData(algorithm, h(cert.issuer.public_bytes()).hexdigest(), h(key_bits).hexdigest(),
                               format(cert.serial_number, "x"))


class LocalCA:
    """Implements csms.domain.certificates.CertificateAuthority. Thread-safe (signing runs in a worker thread)."""

    def __init__(self, *, cert_file: Path | None = None, key_file: Path | None = None,
                 local_dir: Path = Path("csms-ca"), validity_days: int = 365,
                 organization: str = "gridcharge CSMS") -> None:
        if (cert_file is None) != (key_file is None):
            raise ValueError("certificates: set both ca_cert_file and ca_key_file, or neither")
        self._cert_file = cert_file or local_dir / "ca.pem"
        self._key_file = key_file or local_dir / "ca.key"
        self._generate = cert_file is None  # only the embedded default is ever generated
        self.validity_days = validity_days
        self.organization = organization
        self._lock = threading.Lock()
        self._ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey | object] | None = None
        if not self._generate:
            self._load()  # the operator's files: a broken one is refused at start, not at the first request

    # --- the CA itself ---------------------------------------------------------------------------------
    def _load(self) -> tuple[x509.Certificate, object]:
        with self._lock:
            if self._ca is None:
                if self._generate and not self._cert_file.exists():
                    self._create()
                try:
                    cert = x509.load_pem_x509_certificate(self._cert_file.read_bytes())
                    key = serialization.load_pem_private_key(self._key_file.read_bytes(), password=None)
                except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as e:
                    raise ValueError(f"certificates: cannot read the CA ({self._cert_file}, {self._key_file}): "
                                     f"{e}") from e
                self._ca = (cert, key)
            return self._ca

    def _create(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"{self.organization} charger CA")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self._cert_file.parent.mkdir(parents=True, exist_ok=True)
        # The key is written 0600 from the start (never world-readable, not even for an instant).
        fd = os.open(self._key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        self._cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        log.warning("generated a local charger CA at %s (key %s); chargers' certificates are signed by it",
                    self._cert_file, self._key_file)

    def ca_certificate_pem(self) -> str:
        cert, _ = self._load()
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    # --- CertificateAuthority -----------------------------------------------------------------------------
    def check_csr(self, csr_pem: str, station_id: str) -> str | None:
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except (ValueError, UnsupportedAlgorithm):
            return "not a PEM certificate signing request"
        try:
            if not csr.is_signature_valid:
                return "the CSR's signature does not verify"
        except UnsupportedAlgorithm:
            return "the CSR is signed with an unsupported algorithm"
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else None
        if cn != station_id:
            return f"the CSR's common name is {cn!r}, not the station identity {station_id!r}"
        return None

    def sign_csr(self, csr_pem: str, station_id: str) -> str:
        why = self.check_csr(csr_pem, station_id)
        if why is not None:
            raise ValueError(why)
        ca_cert, ca_key = self._load()
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + timedelta(days=self.validity_days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        log.info("signed a certificate station=%s serial=%x not_after=%s", station_id, cert.serial_number,
                 cert.not_valid_after_utc.isoformat())
        return cert.public_bytes(serialization.Encoding.PEM).decode() + self.ca_certificate_pem()
