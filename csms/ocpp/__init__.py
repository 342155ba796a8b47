"""OCPP adapter: websockets server + a sans-I/O OCPP-J core <-> the version-neutral domain.

    from csms.ocpp.server import OcppServer          # the websocket endpoint
    from csms.ocpp.registry import ConnectionRegistry  # implements domain.ports.ChargerGateway

Inside: `protocol` (the OCPP-J core: frames in, events out, no I/O), `connection` (its asyncio shell, one per
charger), `schemas` (compiled validators from the `ocpp` library's schema files), `routing` (`@on`/`@after`),
`v16` / `v201` (handlers, mappings, command tables). Of the `ocpp` library only the schema files, the
`call_result` dataclasses and the enums are used; its `ChargePoint`, routing and validation are not.
"""
