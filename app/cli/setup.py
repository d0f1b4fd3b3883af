"""`cutout-setup`: what a fresh machine needs before serving: model, numba cache, database,
all readable by Cutout's own user only."""

from __future__ import annotations

import argparse
import sys
import time

from alembic import command
from alembic.config import Config

from app.permissions import make_private
from app.services.imaging.model_files import SOURCES, ModelMissing, check_model, provision
from app.settings import Settings, get_settings


def migrate(settings: Settings, url: str | None = None) -> None:
    config = Config("alembic.ini")
    config.attributes["url"] = url or settings.db_url
    command.upgrade(config, "head")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cutout-setup", description=__doc__)
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument(
        "--model",
        action="append",
        choices=sorted(set(SOURCES) - {"u2netp"}),
        default=[],
        help="also provision this optional model (u2net: 'High quality', 176 MB; never by default)",
    )
    parser.add_argument("--skip-warm", action="store_true")
    parser.add_argument("--skip-db", action="store_true")
    args = parser.parse_args(argv)
    settings = get_settings()
    make_private(settings)  # before anything is written: the database is born private
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    if not args.skip_model:
        try:
            if settings.model_name in SOURCES:
                path = provision(settings.models_path, settings.model_name)
            else:
                path = check_model(settings.models_path, settings.model_name)
            print(f"model: {path}")
            for extra in args.model:
                print(f"model: {provision(settings.models_path, extra)} (md5 checked)")
        except ModelMissing as error:
            print(f"cutout-setup: {error}", file=sys.stderr)
            return 1
    if not args.skip_warm:
        started = time.monotonic()
        import rembg  # noqa: F401  (compiles pymatting's numba functions into NUMBA_CACHE_DIR)

        print(f"numba cache warm ({time.monotonic() - started:.1f}s)")
    if not args.skip_db:
        migrate(settings)
        print("database: migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
