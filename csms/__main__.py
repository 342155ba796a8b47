"""python -m csms [--config config.yaml] [--host H] [--port P] [--api-port P] [--check]"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from csms.config import ConfigError, load_config, parse_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="csms", description="OCPP 1.6J/2.0.1 central system with smart charging")
    p.add_argument("--config", type=Path, default=Path("config.yaml"), help="config file (default: config.yaml)")
    p.add_argument("--host", help="listen address of the OCPP endpoint and the REST API (env CSMS_HOST; "
                                  "default: server.host / api.host of the config, 127.0.0.1)")
    p.add_argument("--port", type=int, help="OCPP websocket port (env CSMS_OCPP_PORT; default: server.port, 9000)")
    p.add_argument("--api-port", type=int, help="REST API port (env CSMS_API_PORT; default: api.port, 8000)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    args = p.parse_args(argv)
    # The flags are the environment overrides by another name: a config reload (file change, SIGHUP) reads
    # the environment again, so they keep applying after one.
    for flag, var in ((args.host, "CSMS_HOST"), (args.port, "CSMS_OCPP_PORT"), (args.api_port, "CSMS_API_PORT")):
        if flag is not None:
            os.environ[var] = str(flag)
    # Without config.yaml (the default name) the embedded defaults run; a named file must exist.
    use_file = args.config.exists() or args.config != Path("config.yaml")
    try:
        cfg = load_config(args.config) if use_file else parse_config("", source="(defaults)")
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print("configuration OK")
        return 0
    from csms.app import run
    from csms.logging_setup import setup_logging

    setup_logging(cfg.logging)
    return asyncio.run(run(cfg, args.config if use_file else None))


if __name__ == "__main__":
    sys.exit(main())
