"""Per-version OCPP client adapters for the simulator (built on the ``ocpp`` library's client side)."""
