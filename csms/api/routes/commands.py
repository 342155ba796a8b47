"""Commands to chargers through the version-neutral gateway. The answer is the charger's, or
Offline / Timeout / Error: never a hang."""

from __future__ import annotations

from fastapi import APIRouter

from csms.api.auth import Admin, Operator
from csms.api.deps import ApiContext, Ctx
from csms.api.schemas import (
    AvailabilityIn,
    CommandOut,
    ConfigurationIn,
    GetConfigurationIn,
    RawCallIn,
    RemoteStartIn,
    RemoteStopIn,
    ResetIn,
    TriggerIn,
    UnlockIn,
)
from csms.domain import commands as cmd
from csms.domain.errors import InvalidRequest, UnknownStation
from csms.domain.ids import EvseRef
from csms.domain.model import CommandResult

router = APIRouter(prefix="/stations/{station_id}/commands", tags=["commands"])


async def _known(ctx: ApiContext, station_id: str) -> None:
    async with ctx.store.session() as s:
        if await s.station(station_id) is None:
            raise UnknownStation(station_id)


def _out(r: CommandResult) -> CommandOut:
    return CommandOut(status=str(r.status), data=dict(r.data), detail=r.detail)


@router.post("/remote-start", response_model=CommandOut)
async def remote_start(station_id: str, body: RemoteStartIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    remote_start_id = int(ctx.clock.now().timestamp() * 1000) % 2_000_000_000
    async with ctx.store.session() as s:
        token = await s.id_token(body.id_token)  # its configured type (e.g. Central), not always ISO14443
    return _out(await ctx.gateway.send(station_id, cmd.RemoteStart(
        body.evse_id, body.id_token, remote_start_id, token.type if token is not None else None)))


@router.post("/remote-stop", response_model=CommandOut)
async def remote_stop(station_id: str, body: RemoteStopIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.RemoteStop(body.transaction_id)))


@router.post("/availability", response_model=CommandOut)
async def change_availability(station_id: str, body: AvailabilityIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.ChangeAvailability(body.evse_id, body.operative)))


@router.post("/reset", response_model=CommandOut)
async def reset(station_id: str, body: ResetIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.Reset(body.hard)))


@router.post("/unlock", response_model=CommandOut)
async def unlock(station_id: str, body: UnlockIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.UnlockConnector(EvseRef(body.evse_id, body.connector_id))))


@router.post("/trigger", response_model=CommandOut)
async def trigger(station_id: str, body: TriggerIn, ctx: Ctx, _: Operator) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.TriggerMessage(body.message, body.evse_id)))


@router.post("/get-configuration", response_model=CommandOut)
async def get_configuration(station_id: str, ctx: Ctx, _: Operator, body: GetConfigurationIn | None = None) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.GetConfiguration(
        tuple(body.keys) if body and body.keys else None)))


@router.post("/change-configuration", response_model=CommandOut)
async def change_configuration(station_id: str, body: ConfigurationIn, ctx: Ctx, _: Admin) -> CommandOut:
    await _known(ctx, station_id)
    return _out(await ctx.gateway.send(station_id, cmd.ChangeConfiguration(body.key, body.value)))


@router.post("/raw", response_model=CommandOut,
             summary="Send any CSMS-initiated action of the charger's protocol version (payload in camelCase, "
                     "validated against that version's schema); returns the charger's answer")
async def raw_call(station_id: str, body: RawCallIn, ctx: Ctx, _: Admin) -> CommandOut:
    await _known(ctx, station_id)
    r = await ctx.gateway.send(station_id, cmd.RawCall(body.action, dict(body.payload)))
    if _never_sent(r, body.action):
        # The request itself is wrong for this charger's version (unknown action, schema violation): the
        # caller's mistake, so 4xx with the validator's message rather than a 200 with status Error.
        raise InvalidRequest(r.detail or "invalid request")
    return _out(r)


def _never_sent(r: CommandResult, action: str) -> bool:
    """The gateway refused to send the CALL (see csms.ocpp.connection.request): ERROR, no charger answer
    in data, and a detail naming the action as invalid or unknown for the version."""
    if str(r.status) != "Error" or r.data or not r.detail:
        return False
    return r.detail.startswith(f"invalid {action} request") or r.detail.startswith(f"{action} is not an OCPP")
