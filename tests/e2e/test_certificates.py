"""Certificate management end to end, on both OCPP versions: simulator chargers over websockets, the whole CSMS.

* An operator triggers a renewal through the API; the charger makes a key and a CSR, the CSMS signs it with
  its CA (the embedded local one here) and sends CertificateSigned; the certificate the charger installed
  verifies against that CA and names the charger.
* Install / list / delete root certificates on the charger through the API.
* 2.0.1 ISO 15118 messages reach the PKI/OCSP backend port (a test backend), and without one they are
  answered CALLERROR NotSupported with a sentence that says why.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.app import CsmsApp
from csms.domain.certificates import OcspRequestData, PkiAnswer
from csms.pki import certificate_hash_data
from simulator.certificates import hash_data as charger_side_hash_data

from .conftest import charger, eventually, make_config, running

KEY = "e2e-operator-key-0123456789"
ADMIN_KEY = "e2e-admin-key-0123456789"
VIEW_KEY = "e2e-viewer-key-0123456789"


def setup(tmp_path: Path, extra: str = "") -> str:
    return f"""
api: {{enabled: true, port: 0, keys: {{ops: {{key: {KEY}, role: operator}}, view: {{key: {VIEW_KEY}}}, adm: {{key: {ADMIN_KEY}, role: admin}}}}}}
certificates: {{local_ca_dir: "{tmp_path / 'ca'}"}}
chargers: [{{id: CP-1, security_profile: 0}}]
{extra}"""


def api(app: CsmsApp, key: str = KEY) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.api_port}/api/v1", headers={"X-API-Key": key},
                             timeout=10)


class ScriptedPki:
    """The test's PKI/OCSP backend: revokes serial "dead", answers OCSP and EXI with recognisable payloads."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def authorize_certificate(self, station_id: str, id_token: str, certificate_pem: str | None,
                                    hash_data: tuple[OcspRequestData, ...]) -> str:
        self.calls.append(("authorize", (station_id, id_token, hash_data)))
        return "CertificateRevoked" if any(h.hash_data.serial_number == "dead" for h in hash_data) else "Accepted"

    async def certificate_status(self, station_id: str, request: OcspRequestData) -> PkiAnswer:
        self.calls.append(("status", (station_id, request)))
        return PkiAnswer("Accepted", base64.b64encode(f"ocsp:{request.hash_data.serial_number}".encode()).decode())

    async def ev_certificate(self, station_id: str, schema_version: str, action: str, exi_request: str) -> PkiAnswer:
        self.calls.append(("ev", (station_id, schema_version, action)))
        return PkiAnswer("Accepted", "RVhJLXJlc3BvbnNl")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_charger_gets_its_certificate_signed_by_the_csms_ca(tmp_path: Path, version: str) -> None:
    cfg = make_config(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", setup(tmp_path), api=True)
    async with running(cfg) as app, api(app) as c:
        cp = charger(app, "CP-1", version)
        async with cp:
            r = await c.post("/stations/CP-1/commands/trigger", json={"message": "SignChargingStationCertificate"})
            assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
            await eventually(lambda: cp.certificates.signed == 1, what="CertificateSigned installed")
            ca_pem = (await api(app, VIEW_KEY).get("/certificates/ca")).text
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        assert (tmp_path / "ca" / "ca.pem").read_text() == ca_pem
        assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
        leaf = cp.certificates.certificate
        assert leaf is not None
        leaf.verify_directly_issued_by(ca)  # raises if the CA did not sign it
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
        assert ExtendedKeyUsageOID.CLIENT_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert app.certificates.issued["CP-1"].status == "Accepted"

        # A CSR in another charger's name is refused, and nothing is signed for it.
        cp.certificates.identity = "CP-2"
        async with cp:
            assert await cp.adapter.sign_certificate() == "Rejected"
        assert cp.certificates.signed == 1


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_root_certificates_are_installed_listed_and_deleted_through_the_api(tmp_path: Path,
                                                                                   version: str) -> None:
    cfg = make_config(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", setup(tmp_path), api=True)
    async with running(cfg) as app, api(app) as c:
        root_pem = (await c.get("/certificates/ca")).text  # any root will do: the CSMS's own CA
        cp = charger(app, "CP-1", version)
        async with cp:
            r = await c.post("/stations/CP-1/certificates",
                             json={"certificate_type": "CSMSRootCertificate", "certificate": root_pem})
            assert r.json()["status"] == "Accepted", r.text
            assert "CentralSystemRootCertificate" in cp.certificates.roots if version == "1.6" else \
                "CSMSRootCertificate" in cp.certificates.roots

            listed = (await c.get("/stations/CP-1/certificates")).json()
            assert listed["status"] == "Accepted", listed
            [row] = listed["data"]["certificates"]
            expected = certificate_hash_data(root_pem)  # the CSMS's computation equals the charger's
            root = x509.load_pem_x509_certificate(root_pem.encode())
            assert charger_side_hash_data(root)["issuer_key_hash"] == expected.issuer_key_hash
            assert (row["use"], row["serial_number"], row["issuer_name_hash"], row["issuer_key_hash"]) == (
                "CSMSRootCertificate", expected.serial_number, expected.issuer_name_hash, expected.issuer_key_hash)

            r = await c.delete(f"/stations/CP-1/certificates/{row['serial_number']}", params={
                "issuer_name_hash": row["issuer_name_hash"], "issuer_key_hash": row["issuer_key_hash"]})
            assert r.json()["status"] == "Accepted", r.text
            assert (await c.get("/stations/CP-1/certificates")).json()["status"] == "NotFound"

            r = await c.post("/stations/CP-1/certificates",
                             json={"certificate_type": "V2GRootCertificate", "certificate": root_pem})
            if version == "1.6":  # no ISO 15118 in 1.6: refused before anything is sent
                assert r.json()["status"] == "NotSupported"
                assert not cp.certificates.roots.get("V2GRootCertificate")
            else:
                assert r.json()["status"] == "Accepted"

        # A viewer may read the CA but not change a charger's trust store.
        async with api(app, VIEW_KEY) as viewer:
            r = await viewer.post("/stations/CP-1/certificates",
                                  json={"certificate_type": "CSMSRootCertificate", "certificate": root_pem})
            assert r.status_code == 403


HASH = {"hashAlgorithm": "SHA256", "issuerNameHash": "aa" * 32, "issuerKeyHash": "bb" * 32,
        "responderURL": "http://ocsp.example.com"}


async def _call(ws: Any, uid: str, action: str, payload: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps([2, uid, action, payload]))
    while True:
        frame = json.loads(await ws.recv())
        if frame[1] == uid:
            return frame  # type: ignore[no-any-return]


@pytest.mark.parametrize("with_backend", [True, False])
async def test_iso15118_certificate_messages_reach_the_pki_backend(tmp_path: Path, with_backend: bool) -> None:
    cfg = make_config(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
                      setup(tmp_path, "id_tokens: [{value: EMAID1, type: eMAID}]"), api=True)
    pki = ScriptedPki() if with_backend else None
    app = CsmsApp(cfg, pki_backend=pki)
    await app.start()
    try:
        async with connect(f"ws://127.0.0.1:{app.ocpp_port}/ocpp/CP-1", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            boot = await _call(ws, "b", "BootNotification", {
                "chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
            assert boot[2]["status"] == "Accepted"
            token = {"idToken": "EMAID1", "type": "eMAID"}
            good = await _call(ws, "a1", "Authorize", {
                "idToken": token, "iso15118CertificateHashData": [{**HASH, "serialNumber": "01"}]})
            revoked = await _call(ws, "a2", "Authorize", {
                "idToken": token, "iso15118CertificateHashData": [{**HASH, "serialNumber": "dead"}]})
            plain = await _call(ws, "a3", "Authorize", {"idToken": token})  # no certificate: no PKI needed
            status = await _call(ws, "s", "GetCertificateStatus", {"ocspRequestData": {**HASH, "serialNumber": "01"}})
            ev = await _call(ws, "e", "Get15118EVCertificate", {
                "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install", "exiRequest": "AAEC"})
    finally:
        await app.stop()

    assert plain[0] == 3 and plain[2]["idTokenInfo"]["status"] == "Accepted" and "certificateStatus" not in plain[2]
    if pki is None:
        for frame in (good, revoked, status, ev):
            assert frame[0] == 4 and frame[2] == "NotSupported", frame
            assert "no PKI/OCSP backend is configured" in frame[3]
        return
    assert good[2] == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}
    assert revoked[2] == {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": "CertificateRevoked"}
    assert status[2] == {"status": "Accepted", "ocspResult": base64.b64encode(b"ocsp:01").decode()}
    assert ev[2] == {"status": "Accepted", "exiResponse": "RVhJLXJlc3BvbnNl"}
    kinds = [k for k, _ in pki.calls]
    assert kinds == ["authorize", "authorize", "status", "ev"]
    _, (station, id_token, hashes) = pki.calls[0]
    assert (station, id_token, hashes[0].responder_url) == ("CP-1", "EMAID1", "http://ocsp.example.com")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_signed_certificate_gets_the_charger_in_on_security_profile_3(tmp_path: Path, version: str) -> None:
    """The whole point of signing: a charger on profile 2 gets its certificate from the CSMS, then connects on
    profile 3 with it (mutual TLS, CN = identity), with no password."""
    from csms.pki import LocalCA

    from ..integration.ocpp.pki import TestCA

    server_ca = TestCA(tmp_path / "server-pki")
    srv = server_ca.issue("csms", server=True)
    charger_ca = tmp_path / "ca" / "ca.pem"
    LocalCA(local_dir=tmp_path / "ca").ca_certificate_pem()  # the local CA exists before tls.ca_file names it
    tls = f"server: {{port: 0, security_profile: 0, tls: {{port: 0, cert_file: {srv.cert_file}, " \
          f"key_file: {srv.key_file}, ca_file: {charger_ca}}}}}"
    pw = "0123456789abcdef"
    cfg = make_config(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", setup(tmp_path, tls).replace(
        "chargers: [{id: CP-1, security_profile: 0}]", f"chargers: [{{id: CP-1, security_profile: 2, password: {pw}}}]"),
        api=True)
    async with running(cfg) as app, api(app) as c:
        wss = f"wss://127.0.0.1:{app.ocpp.tls_port}/ocpp"
        cp = charger(wss, "CP-1", version, password=pw, ssl_context=server_ca.client_context())
        async with cp:
            r = await c.post("/stations/CP-1/commands/trigger", json={"message": "SignChargingStationCertificate"})
            assert r.json()["status"] == "Accepted", r.text
            await eventually(lambda: cp.certificates.signed == 1, what="CertificateSigned installed")
        assert cp.certificates.chain_pem and cp.certificates.key_pem
        (tmp_path / "cp.pem").write_text(cp.certificates.chain_pem)
        (tmp_path / "cp.key").write_text(cp.certificates.key_pem)
        r = await api(app, ADMIN_KEY).patch("/stations/CP-1", json={"security_profile": 3})
        assert r.status_code == 200, r.text
        ctx = server_ca.client_context()
        ctx.load_cert_chain(str(tmp_path / "cp.pem"), str(tmp_path / "cp.key"))
        mtls = charger(wss, "CP-1", version, ssl_context=ctx)  # no password: the certificate is the identity
        async with mtls:
            assert mtls.online
        # Profile 3 now: the password alone no longer lets it in.
        auth = "Basic " + base64.b64encode(f"CP-1:{pw}".encode()).decode()
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{wss}/CP-1", ssl=server_ca.client_context(), additional_headers={"Authorization": auth},
                          subprotocols=["ocpp1.6" if version == "1.6" else "ocpp2.0.1"], open_timeout=5)  # type: ignore[list-item]
        assert refused.value.response.status_code == 401
