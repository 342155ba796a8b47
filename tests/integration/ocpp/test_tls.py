"""Security profiles 2 and 3 over real TLS on 127.0.0.1, certificates made at test time (pki.py).

Profile 2: wss:// + HTTP Basic auth. Profile 3: wss:// + a client certificate whose subject CN is the identity.
A charger configured for a profile is refused on a weaker transport; TLS below 1.2 and suites outside OCPP's
list do not complete a handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from ocpp.v16 import call as c16
from ocpp.v201 import call as c201
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.config import TlsConfig
from csms.domain.ports import StationAccess
from csms.ocpp.security import OCPP_TLS12_CIPHERS

from .conftest import SECRET_HASH, Env, MakeEnv, basic
from .pki import TestCA

PASSWORD = "s3cret-passw0rd!"
#: A TLS handshake the server refused: an alert (SSLError), a reset, or (TLS 1.3, where the client's side of
#: the handshake finishes before the server checks its certificate) a closed socket instead of an HTTP answer.
HANDSHAKE_FAILED = (ssl.SSLError, ConnectionError, OSError, InvalidMessage)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_cert(ca: TestCA):  # type: ignore[no-untyped-def]
    return ca.issue("csms", server=True)


@pytest.fixture
async def tls_env(make_env: MakeEnv, ca: TestCA, server_cert) -> Env:  # type: ignore[no-untyped-def]
    tls = TlsConfig(port=0, cert_file=server_cert.cert_file, key_file=server_cert.key_file, ca_file=ca.ca_file)
    return await make_env(tls=tls, stations={
        "P0": StationAccess(True, security_profile=0),
        "P1": StationAccess(True, SECRET_HASH, security_profile=1),
        "P2": StationAccess(True, SECRET_HASH, security_profile=2),
        "P2-NOPW": StationAccess(True, None, security_profile=2),
        "P3": StationAccess(True, None, security_profile=3),
    })


async def boot(env: Env, ident: str, version: str, **kw: object) -> str:
    cp = await env.client(ident, version, **kw)
    if version == "1.6":
        res = await cp.call(c16.BootNotification(charge_point_vendor="V", charge_point_model="M"), suppress=False)
    else:
        res = await cp.call(c201.BootNotification(charging_station={"vendor_name": "V", "model": "M"},
                                                  reason="PowerUp"), suppress=False)
    return str(res.status)


async def status_of(env: Env, ident: str, **kw: object) -> int:
    with pytest.raises(InvalidStatus) as e:
        await env.ws(ident, **kw)  # type: ignore[arg-type]
    return e.value.response.status_code


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_profile_2_tls_with_password_boots(tls_env: Env, ca: TestCA, version: str) -> None:
    assert await boot(tls_env, "P2", version, ssl=ca.client_context(), headers=basic("P2", PASSWORD)) == "Accepted"
    assert tls_env.events.named("connected")[0] == ("P2", "ocpp1.6" if version == "1.6" else "ocpp2.0.1")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_profile_3_client_certificate_is_the_identity(tls_env: Env, ca: TestCA, version: str) -> None:
    ctx = ca.client_context(ca.issue("P3"))
    assert await boot(tls_env, "P3", version, ssl=ctx) == "Accepted"  # no password asked


async def test_lower_profiles_connect_over_tls_too(tls_env: Env, ca: TestCA) -> None:
    await tls_env.ws("P1", ssl=ca.client_context(), headers=basic("P1", PASSWORD))
    await tls_env.ws("P0", ssl=ca.client_context())
    assert [a[0] for a in await tls_env.events.wait_for("connected", 2)] == ["P1", "P0"]


async def test_a_higher_profile_is_refused_on_a_lower_transport(tls_env: Env, ca: TestCA) -> None:
    # Plain ws:// with the right password: profile 2 needs TLS. Profile 3 on ws:// likewise.
    assert await status_of(tls_env, "P2", headers=basic("P2", PASSWORD)) == 403
    assert await status_of(tls_env, "P3") == 403
    # TLS but no certificate (profile 2's transport) for a profile 3 charger, even with a password.
    assert await status_of(tls_env, "P3", ssl=ca.client_context(), headers=basic("P3", PASSWORD)) == 401
    assert tls_env.events.calls == []


async def test_profile_3_certificate_of_another_identity_is_refused(tls_env: Env, ca: TestCA) -> None:
    assert await status_of(tls_env, "P3", ssl=ca.client_context(ca.issue("P2"))) == 403
    assert tls_env.events.calls == []


async def test_profile_2_needs_the_password_and_one_must_be_set(tls_env: Env, ca: TestCA) -> None:
    assert await status_of(tls_env, "P2", ssl=ca.client_context()) == 401
    assert await status_of(tls_env, "P2", ssl=ca.client_context(), headers=basic("P2", "wrong")) == 401
    # No password stored: nothing can match (only profile 0 connects without one).
    assert await status_of(tls_env, "P2-NOPW", ssl=ca.client_context(), headers=basic("P2-NOPW", "")) == 401


async def test_certificate_from_an_unknown_ca_fails_the_tls_handshake(tls_env: Env, ca: TestCA,
                                                                      tmp_path: Path) -> None:
    rogue = TestCA(tmp_path / "rogue", "Rogue CA")
    ctx = ca.client_context(rogue.issue("P3"))  # trusts our server, presents a certificate we never signed
    with pytest.raises(HANDSHAKE_FAILED):
        await tls_env.ws("P3", ssl=ctx)
    assert tls_env.events.calls == []


async def test_tls_below_1_2_is_refused(tls_env: Env, ca: TestCA) -> None:
    ctx = ca.client_context(max_version=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(HANDSHAKE_FAILED):
        await tls_env.ws("P0", ssl=ctx)


@pytest.mark.parametrize("suite", OCPP_TLS12_CIPHERS.split(":")[:2])
async def test_tls_1_2_with_the_ocpp_ecdsa_suites(tls_env: Env, ca: TestCA, suite: str) -> None:
    ctx = ca.client_context(max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(suite)
    ws = await tls_env.ws("P0", ssl=ctx)
    name, version, _ = ws.transport.get_extra_info("cipher")
    assert (name, version) == (suite, "TLSv1.2")


async def test_tls_1_2_suite_outside_ocpp_list_is_refused(tls_env: Env, ca: TestCA) -> None:
    ctx = ca.client_context(max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with pytest.raises(HANDSHAKE_FAILED):
        await tls_env.ws("P0", ssl=ctx)


async def test_unknown_chargers_meet_the_default_profiles_transport(make_env: MakeEnv, ca: TestCA,
                                                                    server_cert) -> None:  # type: ignore[no-untyped-def]
    tls = TlsConfig(port=0, cert_file=server_cert.cert_file, key_file=server_cert.key_file, ca_file=ca.ca_file)
    env = await make_env(tls=tls, stations={}, allow_unknown_chargers=True, security_profile=3)
    assert await status_of(env, "NEW") == 403
    assert await status_of(env, "NEW", ssl=ca.client_context()) == 401
    await env.ws("NEW", ssl=ca.client_context(ca.issue("NEW")))
    assert (await env.events.wait_for("connected"))[0] == ("NEW", "ocpp1.6")
