"""python -m csms [--config config.yaml] [--check]"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from csms.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="csms", description="OCPP 1.6J/2.0.1 central system with smart charging")
    p.add_argument("--config", type=Path, default=Path("config.yaml"), help="config file (default: config.yaml)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config) if args.config.exists() or args.config != Path("config.yaml") else None
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if cfg is None:
        from csms.config import Config

        cfg = Config()
    if args.check:
        print("configuration OK")
        return 0
    from csms.app import run
    from csms.logging_setup import setup_logging

    setup_logging(cfg.logging)
    return asyncio.run(run(cfg, args.config if args.config.exists() else None))


if __name__ == "__main__":
    sys.exit(main())
