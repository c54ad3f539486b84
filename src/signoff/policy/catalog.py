"""The catalog of real MCP servers: which tools perform which action, and where their arguments are.

A policy rule says `action: send_email`; whether `gmail.send_email` or `slack.slack_post_message`
is one, and which argument holds the recipient or the amount, is data about real servers. That
data lives in `signoff/policy/servers/*.yaml`, one reviewed file per server, each naming its source
(package@version or repo@commit) and how its tool names were verified. `servers/catalog.json` is
the same data pre-merged (`python -m signoff.policy.catalog_build`; a test keeps it in sync) because
parsing thirty-five YAML files costs ~300 ms at every proxy start, the JSON ~2 ms, and each
server's tool table is built only when a call to that server is first looked up. Loading (the
JSON, user files) is `catalog_load.load_catalog`; this module only looks things up.

A server is recognised by the command that starts it (npm/PyPI package, docker image, script
path), by its URL, or finally by its configured name (`Catalog.identify`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from signoff.errors import ConfigError

SERVERS_DIR = Path(__file__).with_name("servers")
MERGED = SERVERS_DIR / "catalog.json"

ROLES = (
    "recipient",
    "sender",
    "subject",
    "body",
    "amount",
    "currency",
    "payee",
    "sql",
    "url",
    "method",
    "host",
    "path",
    "content",
    "command",
    "table",
    "collection",
    "repository",
    "branch",
)
ACTIONS = (
    "send_email",
    "send_message",
    "api_call",
    "file_write",
    "file_delete",
    "database_write",
    "database_delete",
    "purchase",
    "payment",
    "refund",
    "shell",
    "deploy",
    "access_change",
    "sensitive_read",
)


class CatalogError(ConfigError):
    """A catalog file is invalid; the message names the file and field."""


@dataclass(frozen=True)
class ToolEntry:
    """What the catalog knows about one tool of one server."""

    server: str
    tool: str
    actions: tuple[str, ...]
    read_only: bool
    destructive: bool | None
    fields: Mapping[str, tuple[str, ...]]
    amount_unit: str = "major"
    currency: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    arguments: tuple[str, ...] = ()
    """The real tool's top-level argument names (its inputSchema properties), as listed."""
    hosts: tuple[str, ...] = ()
    """The API hosts the server's calls reach (e.g. api.stripe.com), for `domains:` rules."""


def _norm_package(token: str) -> str:
    return token.strip().lower().replace("_", "-")


def _norm_name(name: str) -> str:
    """`GitHub MCP`, `github_mcp_server`, `mcp-github` → `github`."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w and w not in ("mcp", "server")]
    return "-".join(words)


def _norm_url(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    if not host:
        return None
    return f"{host}{parts.path.rstrip('/')}"


def _package_candidates(command: Sequence[str]) -> list[str]:
    """Strings in a command line that may name the server's package, image or module."""
    out: list[str] = []
    for token in command:
        if not isinstance(token, str) or not token or token.startswith("-"):
            continue
        t = token.strip()
        out.append(t)
        # npm `pkg@1.2.3` / `@scope/pkg@latest`, PyPI `pkg==1.0` / `pkg[extra]`, docker `image:tag` / `image@sha256:..`
        bare = re.sub(r"(?<=.)@[^/@]*$", "", t)
        bare = re.split(r"==|>=|<=|~=|\[", bare)[0]
        if "/" in bare and ":" in bare.rsplit("/", 1)[-1]:
            bare = bare.rsplit(":", 1)[0]
        out.append(bare)
        if "://" in t:
            continue
        # paths: .../node_modules/@scope/pkg/dist/index.js, .../site-packages/mcp_server_git/__main__.py
        path = PureWindowsPath(t) if "\\" in t else PurePosixPath(t)
        parts = [p for p in path.parts if p not in ("/", "\\")]
        for i, part in enumerate(parts):
            out.append(part)
            if part.startswith("@") and i + 1 < len(parts):
                out.append(f"{part}/{parts[i + 1]}")
        if parts:
            stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
            out.append(stem)
    return [_norm_package(c) for c in out]


class Catalog:
    """All known servers; look-ups are dictionary hits."""

    def __init__(
        self,
        servers: Mapping[str, Mapping[str, ToolEntry]],
        sources: Mapping[str, str] | None = None,
        packages: Mapping[str, str] | None = None,
        urls: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
    ):
        self.servers = servers
        self.sources = sources or {}
        self._packages = packages or {}
        self._urls = urls or {}
        self._names = names or {}

    def __len__(self) -> int:
        return len(self.servers)

    def identify(self, server_name: str, command: Sequence[str] | None = None, url: str | None = None) -> str | None:
        """The catalog id of the server started by `command` / served at `url` / configured as `server_name`."""
        if command:
            for candidate in _package_candidates(command):
                if candidate in self._packages:
                    return self._packages[candidate]
        # a remote server reached through a local bridge: `npx mcp-remote https://mcp.notion.com/mcp`
        urls = [url] if url else []
        urls += [t for t in command or () if isinstance(t, str) and "://" in t]
        for u in urls:
            norm = _norm_url(u)
            if norm:
                for prefix, server_id in self._urls.items():
                    if norm == prefix or norm.startswith(prefix + "/"):
                        return server_id
        if server_name:
            key = _norm_name(server_name)
            if key in self._names:
                return self._names[key]
        return None

    def lookup(self, server_id: str, tool: str) -> ToolEntry | None:
        """The entry for `tool` of catalog server `server_id`, or None (unknown server or tool)."""
        if server_id not in self.servers:
            return None
        return self.servers[server_id].get(tool)


def _entries(srv: Mapping[str, Any]) -> dict[str, ToolEntry]:
    """One server's tool table (built on first use: most proxies wrap one or two servers)."""
    sid = srv["id"]
    unit, currency = srv.get("amount_unit", "major"), srv.get("currency")
    hosts = tuple(srv.get("hosts", ()))
    return {
        name: ToolEntry(
            server=sid,
            tool=name,
            actions=tuple(t.get("actions", ())),
            read_only=bool(t["read_only"]),
            destructive=t.get("destructive"),
            fields=MappingProxyType({role: tuple(paths) for role, paths in t.get("fields", {}).items()}),
            amount_unit=t.get("amount_unit") or unit,
            currency=t.get("currency", currency),
            annotations=MappingProxyType(dict(t.get("annotations", {}))),
            arguments=tuple(t.get("arguments", ())),
            hosts=hosts,
        )
        for name, t in srv["tools"].items()
    }


class _Servers(Mapping[str, Mapping[str, ToolEntry]]):
    """server id -> tool name -> ToolEntry, each server's table built when first looked up."""

    def __init__(self, raw: Mapping[str, Mapping[str, Any]]):
        self._raw = raw
        self._built: dict[str, dict[str, ToolEntry]] = {}

    def __getitem__(self, sid: str) -> Mapping[str, ToolEntry]:
        table = self._built.get(sid)
        if table is None:
            table = self._built[sid] = _entries(self._raw[sid])
        return table

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def build_catalog(servers: Sequence[Mapping[str, Any]]) -> Catalog:
    """The lookup tables for these servers (plain data, as `catalog_load.load_catalog` reads them)."""
    sources: dict[str, str] = {}
    packages: dict[str, str] = {}
    urls: dict[str, str] = {}
    names: dict[str, str] = {}
    for srv in servers:
        sid = srv["id"]
        sources[sid] = srv["source"]
        match = srv.get("match", {})
        for p in match.get("packages", ()):
            packages[_norm_package(p)] = sid
        for u in match.get("urls", ()):
            norm = _norm_url(u)
            if norm:
                urls[norm] = sid
        for n in (sid, *match.get("names", ())):
            names[_norm_name(n)] = sid
    return Catalog(_Servers({s["id"]: s for s in servers}), sources, packages, urls, names)
