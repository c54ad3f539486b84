"""Loading the catalog: the shipped servers (pre-merged `servers/catalog.json`) plus user files.

Kept free of pydantic and YAML: the proxy's start-up path reads the merged JSON (~2 ms); only
user catalog files (and a missing JSON) go through `catalog_build.read_server_file`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signoff.policy.catalog import MERGED, SERVERS_DIR, Catalog, build_catalog


def shipped_servers() -> list[dict[str, Any]]:
    """The shipped catalog as plain data: the pre-merged JSON, or the YAML files if it is missing."""
    try:
        return json.loads(MERGED.read_bytes())["servers"]
    except FileNotFoundError:
        from signoff.policy.catalog_build import read_server_file

        return [read_server_file(p) for p in sorted(SERVERS_DIR.glob("*.yaml"))]


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[dict[str, Any], ...]:
    return tuple(shipped_servers())


def load_catalog(extra: Sequence[str | Path] = ()) -> Catalog:
    """The shipped catalog plus user files (a user file replaces a shipped server with the same id)."""
    return _load(tuple(str(p) for p in extra))


@functools.lru_cache(maxsize=16)
def _load(extra: tuple[str, ...]) -> Catalog:
    servers = {s["id"]: s for s in _shipped()}
    for p in extra:
        path = Path(p)
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for f in files:
            from signoff.policy.catalog_build import read_server_file  # pydantic and YAML only for user files

            srv = read_server_file(f)
            servers[srv["id"]] = srv
    return build_catalog(list(servers.values()))
