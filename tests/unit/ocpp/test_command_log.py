"""A command's outcome is logged at INFO only when it was not accepted: smart charging sends thousands of
accepted SetChargingProfile a minute at 10,000 chargers (issue 10), and an operator looks in the log for the
ones a charger did not follow."""

from __future__ import annotations

import asyncio
import logging

import pytest

from csms.domain.enums import CommandStatus
from csms.domain.model import CommandResult
from csms.ocpp.registry import ConnectionRegistry


@pytest.mark.parametrize(("status", "logged"), [
    (CommandStatus.ACCEPTED, False), ("Accepted", False),  # the adapters hand the charger's word through as it is
    (CommandStatus.REJECTED, True), (CommandStatus.TIMEOUT, True)])
def test_only_commands_not_accepted_are_logged_at_info(caplog: pytest.LogCaptureFixture, status: CommandStatus | str,
                                                        logged: bool) -> None:
    reg = ConnectionRegistry()
    reg._conns["CP1"] = object()  # type: ignore[assignment]

    async def send(_conn: object) -> CommandResult:
        return CommandResult(status)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="csms.ocpp"):
        result = asyncio.run(reg._run("CP1", "SetChargingProfile", send))
    assert result.status is status
    assert any("command station=CP1" in r.getMessage() for r in caplog.records) is logged
