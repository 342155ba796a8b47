"""Charger certificate management: sign the certificates chargers request, route ISO 15118 checks to the PKI.

SignCertificate is answered at once (is the CSR acceptable?); the signed chain follows in CertificateSigned,
sent after the answer (OCPP 2.0.1 A02.FR.05/06: the CSMS signs, then sends CertificateSigned; the 1.6
security whitepaper's A02 is the same flow). Signing runs in a worker thread: an EC signature is ~1 ms, but a
CA on RSA-4096 costs tens of milliseconds that the message path must not wait for.

V2G certificates (2.0.1 `certificateType` V2GCertificate) belong to the V2G PKI, not to the operator's CA:
they are refused with a reason. Contract-certificate checks and OCSP go to the configured `PkiBackend`;
without one they raise `NotConfigured` (OCPP NotSupported with that sentence).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from csms.domain.certificates import (
    CertificateAuthority,
    OcspRequestData,
    PkiAnswer,
    PkiBackend,
    SignVerdict,
    SigningUse,
)
from csms.domain import commands as cmd
from csms.domain.clock import Clock
from csms.domain.errors import NotConfigured
from csms.domain.ports import ChargerGateway

log = logging.getLogger("csms.certificates")

NO_PKI = ("no PKI/OCSP backend is configured (certificates.pki_backend): ISO 15118 certificates cannot be "
          "checked")


@dataclass(frozen=True, slots=True)
class Issued:
    """The last certificate sent to a station, and what it answered."""

    at: datetime
    use: SigningUse
    status: str  # the charger's answer to CertificateSigned (Accepted / Rejected / Offline / ...)


@dataclass
class CertificateService:
    """Implements csms.domain.certificates.CertificateEvents."""

    ca: CertificateAuthority
    gateway: ChargerGateway
    clock: Clock
    pki: PkiBackend | None = None
    issued: dict[str, Issued] = field(default_factory=dict)

    async def sign_requested(self, station_id: str, csr_pem: str, use: SigningUse) -> SignVerdict:
        if use is SigningUse.V2G:
            return self._refuse(station_id, "V2G certificates are signed by the V2G PKI, not by this CSMS's CA")
        why = self.ca.check_csr(csr_pem, station_id)
        return self._refuse(station_id, why) if why is not None else SignVerdict(True)

    @staticmethod
    def _refuse(station_id: str, why: str) -> SignVerdict:
        log.warning("certificate signing refused station=%s reason=%s", station_id, why)
        return SignVerdict(False, why)

    async def issue(self, station_id: str, csr_pem: str, use: SigningUse) -> None:
        try:
            chain = await asyncio.to_thread(self.ca.sign_csr, csr_pem, station_id)
        except Exception:  # noqa: BLE001 - a task: nobody else would see it
            log.exception("certificate signing failed station=%s", station_id)
            return
        result = await self.gateway.send(station_id, cmd.CertificateSigned(chain, use))
        self.issued[station_id] = Issued(self.clock.now(), use, str(result.status))
        level = logging.INFO if str(result.status) == "Accepted" else logging.WARNING
        log.log(level, "certificate sent station=%s use=%s answer=%s detail=%s", station_id, use.value,
                result.status, result.detail)

    def _backend(self) -> PkiBackend:
        if self.pki is None:
            raise NotConfigured(NO_PKI)
        return self.pki

    async def authorize_certificate(self, station_id: str, id_token: str, certificate_pem: str | None,
                                    hash_data: tuple[OcspRequestData, ...]) -> str:
        return await self._backend().authorize_certificate(station_id, id_token, certificate_pem, hash_data)

    async def certificate_status(self, station_id: str, request: OcspRequestData) -> PkiAnswer:
        return await self._backend().certificate_status(station_id, request)

    async def ev_certificate(self, station_id: str, schema_version: str, action: str,
                             exi_request: str) -> PkiAnswer:
        return await self._backend().ev_certificate(station_id, schema_version, action, exi_request)
