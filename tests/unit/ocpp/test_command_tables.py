"""Commands as data: both versions' tables speak every command, and what a version cannot express is refused
without a request (the tables are pure: encode is called here without any connection)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.domain import commands as cmd
from csms.domain.certificates import CertificateUse, SigningUse
from csms.ocpp.v16.commands import TABLE as V16
from csms.ocpp.v201.commands import TABLE as V201


@pytest.mark.parametrize("table", [V16, V201], ids=["1.6", "2.0.1"])
def test_every_command_has_an_entry(table: dict[type, object]) -> None:
    assert set(table) == set(cmd.COMMANDS)


@pytest.mark.parametrize("command, v16, v201", [
    (cmd.RemoteStart(1, "TAG", 7, "Central"), "RemoteStartTransaction", "RequestStartTransaction"),
    (cmd.Reset(hard=True), "Reset", "Reset"),
    (cmd.TriggerMessage("SignChargingStationCertificate"), "ExtendedTriggerMessage", "TriggerMessage"),
    (cmd.ReserveNow(3, None, "TAG", datetime(2026, 1, 1, tzinfo=UTC)), "ReserveNow", "ReserveNow"),
    (cmd.CertificateSigned("PEM"), "CertificateSigned", "CertificateSigned"),
])
def test_one_command_one_request_per_version(command: cmd.Command, v16: str, v201: str) -> None:
    assert [a for a, _ in V16[type(command)][0](command)] == [v16]  # type: ignore[operator, union-attr]
    assert [a for a, _ in V201[type(command)][0](command)] == [v201]  # type: ignore[operator, union-attr]


def test_what_16_cannot_say_is_refused_unsent() -> None:
    for command in (cmd.InstallCertificate(CertificateUse.V2G_ROOT, "PEM"),
                    cmd.CertificateSigned("PEM", SigningUse.V2G),
                    cmd.GetInstalledCertificates((CertificateUse.MO_ROOT,))):
        result = V16[type(command)][0](command)  # type: ignore[operator]
        assert getattr(result, "status", None) == "NotSupported", command
    # 1.6 lists installed certificates one use at a time
    both = V16[cmd.GetInstalledCertificates][0](cmd.GetInstalledCertificates())  # type: ignore[operator]
    assert [p["certificateType"] for _, p in both] == ["CentralSystemRootCertificate", "ManufacturerRootCertificate"]
