"""Validating catalog files, and merging them into `servers/catalog.json`.

Kept apart from `catalog.py` and `catalog_load.py` so the proxy's start-up path (which reads the
pre-merged JSON) never builds these pydantic models or parses YAML; user catalog files and the
build go through here.

    python -m signoff.policy.catalog_build          # rewrite servers/catalog.json from servers/*.yaml
    python -m signoff.policy.catalog_build --check  # exit 1 if it is stale
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from signoff.policy.catalog import ACTIONS, MERGED, ROLES, SERVERS_DIR, CatalogError

Role = Literal[ROLES]  # type: ignore[valid-type]
Action = Literal[ACTIONS]  # type: ignore[valid-type]
# `args.to`, `args.message.to`, `args.items[*].price`, `args.amount_money.amount`
_PATH = re.compile(r"^args(\.[A-Za-z0-9_$@-]+(\[\*\])?)+$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_READS = {"sensitive_read", "api_call"}  # a read-only tool may still fetch a URL or read secrets


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actions: list[Action] = []
    read_only: bool
    arguments: list[str] = []
    destructive: bool | None = None
    fields: dict[Role, list[str]] = {}
    amount_unit: Literal["major", "minor"] | None = None
    currency: str | None = None
    annotations: dict[str, Any] = {}
    note: str | None = None

    @field_validator("fields", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, paths in value.items():
            for p in paths:
                if not _PATH.match(p):
                    raise ValueError(f"{role}: {p!r} is not an argument path; write args.key, args.a.b or args.items[*].price")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> _Tool:
        if self.arguments:
            for role, paths in self.fields.items():
                for p in paths:
                    top = p.split(".")[1].removesuffix("[*]")
                    if top not in self.arguments:
                        raise ValueError(f"fields.{role}: {p!r} is not one of the tool's arguments {self.arguments}")
        if self.read_only and set(self.actions) - _READS:
            raise ValueError(f"a read-only tool cannot perform {sorted(set(self.actions) - _READS)}; set read_only: false")
        if self.read_only and self.destructive:
            raise ValueError("a read-only tool cannot be destructive")
        return self


class _Match(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packages: list[str] = []  # npm/PyPI package names, docker images, executables, python modules
    urls: list[str] = []  # remote server endpoints (prefix match on host + path)
    names: list[str] = []  # configured server names (the id always counts)


class _Server(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    source: str
    verified: Literal["tools/list", "source"]
    match: _Match = _Match()
    amount_unit: Literal["major", "minor"] = "major"
    currency: str | None = None
    hosts: list[str] = []  # the API hosts every call of this server reaches
    note: str | None = None
    tools: dict[str, _Tool]

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("write lower-case letters, digits, '-' or '_'")
        return value


def _validate(data: Any, source: str) -> _Server:
    if not isinstance(data, dict):
        raise CatalogError("a catalog file is a mapping with id, title, source, verified, match and tools", path=source)
    try:
        return _Server.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"] if isinstance(p, (str, int)))
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling"
        elif first["type"] == "missing":
            msg = "this key is required; add it"
        elif first["type"] == "literal_error":
            msg = f"{msg} (got {first.get('input')!r})"
        raise CatalogError(msg, path=source, field=loc or None) from None


def read_server_file(path: Path) -> dict[str, Any]:
    """One YAML catalog file, validated, as plain data (what `catalog.json` holds per server)."""
    from signoff.yamlsrc import load_yaml  # YAML only on the slow path (user files, build)

    data, _ = load_yaml(path, source=str(path), error=CatalogError)
    return _validate(data, str(path)).model_dump(exclude_none=True, exclude_defaults=True) | {
        "id": data["id"],
        "title": data["title"],
        "source": data["source"],
        "verified": data["verified"],
    }


def _no_shared_matches(servers: Sequence[dict[str, Any]], paths: Sequence[Path]) -> None:
    """Two shipped files may not claim the same package, URL or name: one would silently win."""
    from signoff.policy.catalog import _norm_name, _norm_package, _norm_url

    seen: dict[tuple[str, str], Path] = {}
    for srv, path in zip(servers, paths, strict=True):
        match = srv.get("match", {})
        keys = [("package", _norm_package(p)) for p in match.get("packages", ())]
        keys += [("url", _norm_url(u) or u) for u in match.get("urls", ())]
        keys += [("name", _norm_name(n)) for n in (srv["id"], *match.get("names", ()))]
        for key in dict.fromkeys(keys):
            if key in seen:
                raise CatalogError(
                    f"{key[0]} {key[1]!r} is also claimed by {seen[key].name}; keep it in one file", path=str(path), field="match"
                )
            seen[key] = path


def build_merged() -> str:
    """The text of `catalog.json` for the YAML files as they are now."""
    paths = sorted(SERVERS_DIR.glob("*.yaml"))
    servers = [read_server_file(p) for p in paths]
    _no_shared_matches(servers, paths)
    return (
        json.dumps(
            {"generated_by": "python -m signoff.policy.catalog_build", "servers": servers}, sort_keys=True, separators=(",", ":")
        )
        + "\n"
    )


def main(argv: Sequence[str]) -> int:
    """Rewrite catalog.json, or with `--check` say whether it is stale."""
    text = build_merged()
    if not argv:
        MERGED.write_text(text)
        return 0
    if argv[:1] == ["--check"]:
        stale = not MERGED.exists() or MERGED.read_text() != text
        print(
            "catalog.json is stale: run python -m signoff.policy.catalog_build" if stale else "catalog.json is up to date",
            file=sys.stderr,
        )
        return 1 if stale else 0
    print("usage: python -m signoff.policy.catalog_build [--check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
