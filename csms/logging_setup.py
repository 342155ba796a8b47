"""One structured line per event: `ts level logger message` as text, or one JSON object per line.

The `ocpp` library logs every frame at INFO; it (and alembic's per-start chatter) is held at WARNING, and our adapter logs frames at
DEBUG on `csms.ocpp.frames` only when logging.frames is on.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from csms.config import LoggingConfig


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(cfg: LoggingConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if cfg.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level)
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("pyomo").setLevel(logging.WARNING)
    # Alembic says "Context impl SQLiteImpl." and each step at INFO at every start; our own
    # "database migrated" line is enough.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("csms.ocpp.frames").setLevel(logging.DEBUG if cfg.frames else logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
