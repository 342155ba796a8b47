"""Application use-cases. asyncio allowed; no adapter imports (sqlalchemy, websockets, ocpp, aiomqtt)."""
