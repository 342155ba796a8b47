"""Handshake rules over real websockets: identity, unknown chargers, Basic auth, subprotocols, replacement."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.domain.enums import RegistrationStatus
from csms.domain.ports import StationAccess

from .conftest import Env, MakeEnv
from .fakes import basic


async def refused(env: Env, ident: str, protocols: list[str] | None = ("ocpp1.6",), **kw: object) -> int:  # type: ignore[assignment]
    with pytest.raises(InvalidStatus) as e:
        await env.ws(ident, protocols, **kw)
    return e.value.response.status_code


@pytest.mark.parametrize("ident, status", [
    ("a" * 49, 400),
    ("CP%3A1", 400),
    ("CP%2F1", 400),
    ("", 400),
    ("CP1/extra", 404),
])
async def test_bad_identities_are_refused(env: Env, ident: str, status: int) -> None:
    assert await refused(env, ident) == status
    assert env.events.calls == []


async def test_wrong_prefix_is_404(env: Env) -> None:
    with pytest.raises(InvalidStatus) as e:
        from .fakes import open_ws
        await open_ws(env.port, "CP1", prefix="/other")
    assert e.value.response.status_code == 404


async def test_url_encoded_identity_is_decoded(make_env: MakeEnv) -> None:
    env = await make_env(stations={"CP 1": StationAccess(True, security_profile=0)})
    await env.ws("CP%201")
    assert (await env.events.wait_for("connected"))[0] == ("CP 1", "ocpp1.6")


async def test_unknown_identity_is_404(env: Env) -> None:
    assert await refused(env, "NOPE") == 404
    assert env.events.calls == []


async def test_unknown_identity_connects_when_allowed(make_env: MakeEnv) -> None:
    env = await make_env(allow_unknown_chargers=True)
    env.events.boot_status = RegistrationStatus.PENDING
    cp = await env.client("NEWBIE")
    res = await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False)
    assert res.status == "Pending"
    assert env.events.named("connected") == [("NEWBIE", "ocpp1.6")]
    await asyncio.sleep(0.05)
    assert env.events.named("ready") == []  # Pending: not ready


@pytest.mark.parametrize("headers", [
    None,
    basic("SECURE", "wrong"),
    basic("OTHER", "s3cret-passw0rd!"),
    {"Authorization": "Bearer abc"},
    {"Authorization": "Basic !!!"},
])
async def test_bad_credentials_are_401(env: Env, headers: dict[str, str] | None) -> None:
    with pytest.raises(InvalidStatus) as e:
        await env.ws("SECURE", headers=headers)
    assert e.value.response.status_code == 401
    assert e.value.response.headers["WWW-Authenticate"].startswith("Basic")


async def test_right_password_connects_and_is_cached(env: Env) -> None:
    for _ in range(3):
        ws = await env.ws("SECURE", headers=basic("SECURE", "s3cret-passw0rd!"))
        assert ws.subprotocol == "ocpp1.6"
    assert len(env.server._auth._ok) == 1


async def test_no_subprotocol_is_refused(env: Env) -> None:
    assert await refused(env, "CP1", None) == 400
    assert await refused(env, "CP1", ["ocpp2.1"]) == 400
    assert env.events.calls == [] and env.directory.lookups == 0


@pytest.mark.parametrize("server_order, offered, chosen", [
    (["ocpp2.0.1", "ocpp1.6"], ["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),
    (["ocpp1.6", "ocpp2.0.1"], ["ocpp2.0.1", "ocpp1.6"], "ocpp1.6"),
    (["ocpp2.0.1", "ocpp1.6"], ["ocpp1.6"], "ocpp1.6"),
    (["ocpp2.0.1"], ["ocpp2.0.1"], "ocpp2.0.1"),
])
async def test_server_order_decides(make_env: MakeEnv, server_order: list[str], offered: list[str],
                                    chosen: str) -> None:
    env = await make_env(subprotocols=server_order)
    ws = await env.ws("CP1", offered)
    assert ws.subprotocol == chosen
    assert (await env.events.wait_for("connected"))[0] == ("CP1", chosen)


async def test_only_offered_protocol_not_served(make_env: MakeEnv) -> None:
    env = await make_env(subprotocols=["ocpp2.0.1"])
    assert await refused(env, "CP1", ["ocpp1.6"]) == 400


async def test_second_connection_replaces_the_first(env: Env) -> None:
    first = await env.client("CP1")
    await env.events.wait_for("connected")
    second = await env.client("CP1")
    await env.events.wait_for("connected", 2)
    ws1 = first._connection
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws1.recv(), 3)
    assert ws1.close_code == 1000 and ws1.close_reason == "replaced by a new connection"
    await asyncio.sleep(0.05)
    assert env.events.named("disconnected") == []  # the replaced connection does not mark it offline
    assert env.server.registry.is_connected("CP1")
    res = await second.call(call.Heartbeat(), suppress=False)
    assert res.current_time.endswith("Z")
    await second._connection.close()
    assert await env.events.wait_for("disconnected") == [("CP1",)]
    assert not env.server.registry.is_connected("CP1")


async def test_dead_connection_is_detected_by_keepalive(make_env: MakeEnv) -> None:
    env = await make_env(ping_interval_s=0.1, ping_timeout_s=0.2)
    ws = await env.ws("CP1", ping_interval=None, close_timeout=0.1)
    await env.events.wait_for("connected")
    ws.transport.pause_reading()  # a charger that vanished: no pong ever comes back
    await env.events.wait_for("disconnected", timeout=2.0)
    assert not env.server.registry.is_connected("CP1")


async def test_known_station_without_boot_becomes_ready_after_grace(make_env: MakeEnv) -> None:
    env = await make_env(ready_grace_s=0.05)
    cp = await env.client("CP1")
    assert await env.events.wait_for("ready") == [("CP1",)]
    assert cp.got("GetConfiguration")  # capabilities asked first
    caps = env.server.registry.capabilities("CP1")
    assert {u.value for u in caps.rate_units} == {"A", "W"}


async def test_boot_within_grace_gives_one_ready(make_env: MakeEnv) -> None:
    env = await make_env(ready_grace_s=0.3)
    cp = await env.client("CP1")
    await cp.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False)
    await env.events.wait_for("ready")
    await asyncio.sleep(0.4)
    assert env.events.named("ready") == [("CP1",)]


async def test_stop_closes_connections_and_reports_them_offline(make_env: MakeEnv) -> None:
    env = await make_env()
    await env.client("CP1")
    await env.client("CP2", "2.0.1")
    await env.events.wait_for("connected", 2)
    await env.server.stop()
    assert sorted(a for (a,) in env.events.named("disconnected")) == ["CP1", "CP2"]


async def test_failed_logins_are_throttled_before_any_hash(make_env: MakeEnv) -> None:
    from csms.ocpp.throttle import Backoff, LoginThrottle

    env = await make_env(throttle=LoginThrottle(identity=Backoff(free=3, base_s=0.3), address=Backoff(free=50)))
    hashes = 0
    check = env.server._auth.check

    async def counting(*a: object) -> bool:
        nonlocal hashes
        hashes += 1
        return await check(*a)  # type: ignore[arg-type]

    env.server._auth.check = counting  # type: ignore[method-assign]
    for _ in range(3):
        with pytest.raises(InvalidStatus) as e:
            await env.ws("SECURE", headers=basic("SECURE", "wrong"))
        assert e.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as e:
        await env.ws("SECURE", headers=basic("SECURE", "wrong"))  # 4th: counted, then blocked
    lookups = env.directory.lookups
    for _ in range(20):  # blocked: refused before the directory and before any hash, even the right password
        with pytest.raises(InvalidStatus) as e:
            await env.ws("SECURE", headers=basic("SECURE", "s3cret-passw0rd!"))
        assert e.value.response.status_code == 429 and e.value.response.headers["Retry-After"] == "1"
    assert hashes == 4 and env.directory.lookups == lookups and env.server.throttle.refused == 20
    # Another charger from the same address is not affected; after the block the right password works.
    await env.ws("CP1")
    await asyncio.sleep(0.35)
    await env.ws("SECURE", headers=basic("SECURE", "s3cret-passw0rd!"))
    assert ("id", "SECURE") not in env.server.throttle._records  # success cleared it


async def test_an_address_guessing_identities_is_throttled(make_env: MakeEnv) -> None:
    from csms.ocpp.throttle import Backoff, LoginThrottle

    env = await make_env(throttle=LoginThrottle(address=Backoff(free=5, base_s=30)))
    for i in range(6):
        assert await refused(env, f"GUESS-{i}") == 404
    assert await refused(env, "CP1") == 429  # the whole address waits now


async def test_only_a_quiet_charger_is_pinged(make_env: MakeEnv) -> None:
    """A charger that sends messages is alive: no keepalive ping for it; one that says nothing is pinged every
    interval, answers, and stays connected (keepalive.py: at 10,000 chargers pings were half the frames)."""
    env = await make_env(ping_interval_s=0.2, ping_timeout_s=1.0)
    talker = await env.client("CP1")
    await env.client("CP2")
    for _ in range(12):
        await talker.call(call.Heartbeat(), suppress=False)
        await asyncio.sleep(0.1)
    server_side = {i: env.server.registry.connection(i)._connection for i in ("CP1", "CP2")}  # type: ignore[union-attr]
    assert server_side["CP1"].pings_sent == 0
    assert server_side["CP2"].pings_sent >= 3
    assert env.server.registry.is_connected("CP2") and env.events.named("disconnected") == []
