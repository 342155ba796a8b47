"""Certificate management, version-neutral: the words both OCPP versions share, and the two ports.

* `CertificateAuthority` signs the chargers' own certificates (SignCertificate -> CertificateSigned). The
  embedded default is a local CA (`csms.pki.LocalCA`); an operator may configure their own CA files.
* `PkiBackend` answers what only a V2G/contract PKI or an OCSP responder can: ISO 15118 contract
  certificates at Authorize, GetCertificateStatus (OCSP) and Get15118EVCertificate. None is configured by
  default: those messages are then refused with a readable NotSupported (`errors.NotConfigured`).
* `CertificateEvents` is what the OCPP adapters call for charger-initiated certificate messages
  (implemented by `services.certificates.CertificateService`).

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class CertificateUse(StrEnum):
    """What a certificate installed on a charger is for (2.0.1 spelling; 1.6 has the first two only, and
    calls CSMS_ROOT CentralSystemRootCertificate)."""

    CSMS_ROOT = "CSMSRootCertificate"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"
    V2G_ROOT = "V2GRootCertificate"
    MO_ROOT = "MORootCertificate"
    V2G_CHAIN = "V2GCertificateChain"  # only reported by GetInstalledCertificateIds, never installed


class SigningUse(StrEnum):
    """Which of its own certificates a charger asks to be signed (1.6: always the charge point's)."""

    CHARGING_STATION = "ChargingStationCertificate"
    V2G = "V2GCertificate"


@dataclass(frozen=True, slots=True)
class CertificateHashData:
    """How OCPP names an installed certificate: hashes of its issuer's name and key, and its serial (hex)."""

    hash_algorithm: str  # SHA256 | SHA384 | SHA512
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str


@dataclass(frozen=True, slots=True)
class InstalledCertificate:
    use: CertificateUse
    hash_data: CertificateHashData


@dataclass(frozen=True, slots=True)
class OcspRequestData:
    """A certificate whose revocation status is asked for, and the OCSP responder that knows it."""

    hash_data: CertificateHashData
    responder_url: str


@dataclass(frozen=True, slots=True)
class SignVerdict:
    accepted: bool
    reason: str = ""  # why a CSR was rejected (sent as statusInfo in 2.0.1, logged in both)


@dataclass(frozen=True, slots=True)
class PkiAnswer:
    """A PKI backend's answer: `status` in the OCPP word of the message (Accepted / Failed), and its payload
    (`data`: a base64 OCSP response, or an EXI response for Get15118EVCertificate)."""

    status: str
    data: str | None = None
    reason: str = ""


class CertificateAuthority(Protocol):
    """Signs the certificate a charger requests for itself (its TLS client certificate, profile 3)."""

    def check_csr(self, csr_pem: str, station_id: str) -> str | None:
        """Why this CSR cannot be signed for this station (unreadable, bad signature, another CN), or None."""
        ...

    def sign_csr(self, csr_pem: str, station_id: str) -> str:
        """The signed certificate chain (PEM, leaf first). Raises ValueError if `check_csr` would refuse."""
        ...

    def ca_certificate_pem(self) -> str:
        """The CA certificate chargers' certificates verify against (what `server.tls.ca_file` should hold)."""
        ...


class PkiBackend(Protocol):
    """A V2G / contract-certificate PKI with its OCSP responders, for ISO 15118 (Plug & Charge)."""

    async def authorize_certificate(self, station_id: str, id_token: str, certificate_pem: str | None,
                                    hash_data: tuple[OcspRequestData, ...]) -> str:
        """The contract certificate's status: Accepted, SignatureError, CertificateExpired, CertificateRevoked,
        NoCertificateAvailable, CertChainError or ContractCancelled (2.0.1 AuthorizeCertificateStatusEnumType)."""
        ...

    async def certificate_status(self, station_id: str, request: OcspRequestData) -> PkiAnswer:
        """GetCertificateStatus: the OCSP response (base64 DER) for one certificate."""
        ...

    async def ev_certificate(self, station_id: str, schema_version: str, action: str,
                             exi_request: str) -> PkiAnswer:
        """Get15118EVCertificate: install or update a contract certificate in the EV (EXI, base64)."""
        ...


class CertificateEvents(Protocol):
    """Charger-initiated certificate messages, version-neutral (implemented by services.certificates)."""

    async def sign_requested(self, station_id: str, csr_pem: str, use: SigningUse) -> SignVerdict:
        """SignCertificate: may this CSR be signed? Answered at once; the certificate follows (`issue`)."""
        ...

    async def issue(self, station_id: str, csr_pem: str, use: SigningUse) -> None:
        """After an Accepted SignCertificate answer was sent: sign and send CertificateSigned."""
        ...

    async def authorize_certificate(self, station_id: str, id_token: str, certificate_pem: str | None,
                                    hash_data: tuple[OcspRequestData, ...]) -> str: ...

    async def certificate_status(self, station_id: str, request: OcspRequestData) -> PkiAnswer: ...

    async def ev_certificate(self, station_id: str, schema_version: str, action: str,
                             exi_request: str) -> PkiAnswer: ...
