"""Certificates on chargers (InstallCertificate, GetInstalledCertificateIds, DeleteCertificate) and the CA that
signs chargers' own certificates. A renewal is `POST .../commands/trigger {"message":
"SignChargingStationCertificate"}` (1.6: sent as ExtendedTriggerMessage). Operator role: these change what a
charger trusts."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from csms.api.auth import Operator, Viewer
from csms.api.deps import Ctx
from csms.api.routes.commands import _known, _out
from csms.api.schemas import CertificateUseWord, CommandOut, InstallCertificateIn
from csms.domain import commands as cmd
from csms.domain.certificates import CertificateHashData, CertificateUse

router = APIRouter(tags=["certificates"])
_HEX = r"^[0-9A-Fa-f]{1,128}$"


@router.post("/stations/{station_id}/certificates", response_model=CommandOut,
             summary="Install a root certificate on the charger (InstallCertificate); the charger's answer")
async def install(station_id: str, body: InstallCertificateIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.InstallCertificate(CertificateUse(body.certificate_type),
                                                                         body.certificate)))


@router.get("/stations/{station_id}/certificates", response_model=CommandOut,
            summary="Ask the charger which certificates it has installed (GetInstalledCertificateIds); "
                    "data.certificates lists them with their hash data")
async def installed(station_id: str, ctx: Ctx, _: Operator,
                    certificate_type: Annotated[list[CertificateUseWord] | None, Query()] = None) -> CommandOut:
    await _known(ctx, station_id)
    uses = tuple(CertificateUse(u) for u in certificate_type) if certificate_type else None
    return _out(await ctx.gateway.send(station_id, cmd.GetInstalledCertificates(uses)))


@router.delete("/stations/{station_id}/certificates/{serial_number}", response_model=CommandOut,
               summary="Delete a certificate from the charger (DeleteCertificate), named by its hash data as "
                       "GET .../certificates reports it")
async def delete(station_id: str, ctx: Ctx, _: Operator,
                 serial_number: Annotated[str, Path(pattern=_HEX, max_length=40)],
                 issuer_name_hash: Annotated[str, Query(pattern=_HEX)],
                 issuer_key_hash: Annotated[str, Query(pattern=_HEX)],
                 hash_algorithm: Literal["SHA256", "SHA384", "SHA512"] = "SHA256") -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.DeleteCertificate(
        CertificateHashData(hash_algorithm, issuer_name_hash, issuer_key_hash, serial_number))))


@router.get("/certificates/ca", response_class=PlainTextResponse,
            summary="The CA certificate (PEM) that signs chargers' certificates: what server.tls.ca_file should "
                    "trust for security profile 3")
async def ca_certificate(ctx: Ctx, _: Viewer) -> PlainTextResponse:
    return PlainTextResponse(ctx.certificates.ca.ca_certificate_pem(), media_type="application/x-pem-file")
