"""OCPP adapter: websockets server + the `ocpp` library <-> the version-neutral domain.

    from csms.ocpp.server import OcppServer          # the websocket endpoint
    from csms.ocpp.registry import ConnectionRegistry  # implements domain.ports.ChargerGateway

Importing this package configures the `ocpp` library once for the whole process:

* `ocpp.messages.ASYNC_VALIDATION = False`: schema validation runs in the event loop instead of a
  thread hop per message (about 2x the throughput). The attribute is undocumented; a guard test
  (tests/unit/ocpp/test_library_guard.py) fails if an upgrade removes it.
* the "ocpp" logger is held at WARNING: the library logs every frame at INFO. Our own frame log is
  "csms.ocpp.frames" at DEBUG; everything else is one line per event on "csms.ocpp".
"""

from __future__ import annotations

import logging

import ocpp.messages

ocpp.messages.ASYNC_VALIDATION = False
logging.getLogger("ocpp").setLevel(logging.WARNING)
