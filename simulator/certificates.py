"""The charger's side of certificate management (both OCPP versions), as a real station does it:

* on a trigger (2.0.1 TriggerMessage SignChargingStationCertificate, 1.6 ExtendedTriggerMessage
  SignChargePointCertificate) it makes a new EC P-256 key and a CSR whose subject CN is its identity, and sends
  SignCertificate;
* CertificateSigned installs the returned chain only if its leaf carries the key the CSR was made for and the
  charger's identity (else Rejected, and the old certificate stays);
* InstallCertificate / GetInstalledCertificateIds / DeleteCertificate keep root certificates per use, named by
  OCPP CertificateHashData (SHA-256 of the issuer's name and public key, serial in hex).

Uses the `cryptography` package; knows nothing of the CSMS.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_HASHES = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}


def _key_bits(cert: x509.Certificate) -> bytes:
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def hash_data(cert: x509.Certificate, algorithm: str = "SHA256") -> dict[str, str]:
    """CertificateHashData (snake_case keys, as ``ocpp`` handlers get and return them) of a self-issued root."""
    h = _HASHES[algorithm]
    return {"hash_algorithm": algorithm, "issuer_name_hash": h(cert.issuer.public_bytes()).hexdigest(),
            "issuer_key_hash": h(_key_bits(cert)).hexdigest(), "serial_number": format(cert.serial_number, "x")}


@dataclass
class CertificateStore:
    identity: str
    organization: str = "GridChargeSim"
    #: The charger's own certificate chain (PEM, leaf first) and key, once a CSMS signed one.
    chain_pem: str | None = None
    key_pem: str | None = None
    #: Installed roots by OCPP use word (2.0.1 spelling; 1.6's CentralSystemRootCertificate is kept as is).
    roots: dict[str, list[x509.Certificate]] = field(default_factory=dict)
    _pending: ec.EllipticCurvePrivateKey | None = None
    signed: int = 0  # certificates installed by CertificateSigned
    requests: int = 0  # CSRs sent

    # --- own certificate -------------------------------------------------------------------------------
    def new_csr(self) -> str:
        """A fresh key and its CSR (CN = identity). The key waits for its certificate."""
        self._pending = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                          x509.NameAttribute(NameOID.COMMON_NAME, self.identity)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(self._pending, hashes.SHA256())
        self.requests += 1
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def install_signed(self, chain_pem: str) -> bool:
        """CertificateSigned: True (Accepted) if the leaf is for the pending key and this identity."""
        key = self._pending
        try:
            certs = x509.load_pem_x509_certificates(chain_pem.encode())
        except ValueError:
            return False
        if key is None or not certs:
            return False
        leaf = certs[0]
        if _key_bits(leaf) != key.public_key().public_bytes(serialization.Encoding.X962,
                                                            serialization.PublicFormat.UncompressedPoint):
            return False
        cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cns or cns[0].value != self.identity:
            return False
        self.chain_pem = chain_pem
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()
        self._pending = None
        self.signed += 1
        return True

    @property
    def certificate(self) -> x509.Certificate | None:
        return x509.load_pem_x509_certificates(self.chain_pem.encode())[0] if self.chain_pem else None

    # --- installed roots --------------------------------------------------------------------------------
    def install_root(self, use: str, pem: str) -> str:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return "Rejected"
        self.roots.setdefault(use, []).append(cert)
        return "Accepted"

    def installed(self, uses: list[str] | None) -> list[tuple[str, dict[str, str]]]:
        return [(use, hash_data(c)) for use, certs in self.roots.items() if not uses or use in uses for c in certs]

    def delete(self, wanted: dict[str, str]) -> str:
        algorithm = wanted.get("hash_algorithm", "SHA256")
        for use, certs in self.roots.items():
            for c in certs:
                if hash_data(c, algorithm) == wanted:
                    certs.remove(c)
                    return "Accepted"
        return "NotFound"
