"""Commands as data, the shared part: the shape of a version's command table and the pieces both tables use.

A table maps each command type (csms.domain.commands) to `(encode, decode)`:

* `encode(cmd)` -> the requests `[(action, camelCase payload), ...]` that carry it in this version (most
  commands are one request; 1.6 GetInstalledCertificateIds is one per certificate use), or a CommandResult when
  the command cannot be expressed (NotSupported, or an Error for a value the version cannot carry) and nothing
  is sent;
* `decode(cmd, answers)` -> the CommandResult, from the charger's answer payloads (one per request, in order).

`OcppConnection.send` runs a table; `ConnectionRegistry.send` finds the connection. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csms.domain.enums import CommandStatus
from csms.domain.model import CommandResult

Request = tuple[str, dict[str, Any]]
Encode = Callable[[Any], "list[Request] | CommandResult"]
Decode = Callable[[Any, list[dict[str, Any]]], CommandResult]
CommandTable = dict[type, tuple[Encode, Decode]]


def one(action: str, build: Callable[[Any], dict[str, Any]]) -> Encode:
    """A command carried by one request of `action`."""
    return lambda c: [(action, build(c))]


def status_result(answer: dict[str, Any]) -> CommandResult:
    """The common answer shape {status, ...}: the charger's status word, the whole answer as data."""
    status = answer.get("status")
    return CommandResult(status if isinstance(status, str) else CommandStatus.ACCEPTED.value, data=answer)


def status_of(c: Any, answers: list[dict[str, Any]]) -> CommandResult:
    return status_result(answers[-1])


def decoded(fn: Callable[[Any, dict[str, Any]], CommandResult]) -> Decode:
    """A decoder of the one answer of a one-request command."""
    return lambda c, answers: fn(c, answers[-1])


def refused(detail: str) -> CommandResult:
    """A command that cannot be expressed in this OCPP version (never sent)."""
    return CommandResult(CommandStatus.NOT_SUPPORTED, detail=detail)
