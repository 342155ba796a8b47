"""Identifiers. NewTypes keep a station id from being passed where a token is expected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

StationId = NewType("StationId", str)
SiteId = NewType("SiteId", str)
#: Our own key of a transaction: "<station>/<charger's transaction id>", unique across the system.
TransactionKey = NewType("TransactionKey", str)
IdTokenValue = NewType("IdTokenValue", str)


@dataclass(frozen=True, slots=True, order=True)
class EvseRef:
    """An EVSE and one of its connectors, in OCPP 2.0.1's addressing (richer than 1.6's connectorId)."""

    evse_id: int
    connector_id: int = 1


def transaction_key(station_id: str, charger_tx_id: str) -> TransactionKey:
    return TransactionKey(f"{station_id}/{charger_tx_id}")
