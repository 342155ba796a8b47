"""REST adapter (FastAPI). create_app(ctx) builds the ASGI app; no module-level state."""
