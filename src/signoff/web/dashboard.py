"""The page as a team dashboard: one queue for every machine, narrowed by machine, agent and
server, and the list of proxies connected to the store.

Filters come from the URL's query (`?machine=&agent=&server=`), so a narrowed view can be
bookmarked; they are applied here, on the server, to the queue, its event stream and the history.
Values are compared exactly, never as patterns: agent names come from MCP clients (the model's
side), so a name is data to match and to show as text, nothing more. The choices the page offers
(`facets`) are the values present in what the visitor may see.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from signoff.approvals.liveness import proxy_gone

KEYS = ("machine", "agent", "server")
"""What the queue and history can be narrowed by (the history also by person, `by`)."""
MAX_VALUE = 256
"""A filter value longer than any name signoff shows matches nothing (and is not echoed)."""
CONFLICT = "\x00" * (MAX_VALUE + 1)
"""Stands for two different values of one key: longer than MAX_VALUE, so it matches nothing."""


@dataclass(frozen=True)
class Filter:
    """Exact values to keep (None: any). An unknown value keeps nothing, by design."""

    machine: str | None = None
    agent: str | None = None
    server: str | None = None

    @classmethod
    def from_query(cls, query: Any) -> Filter:
        """From the URL's query; a key given twice with different values keeps nothing (the page
        and a script could each read a different one of them: no guessing)."""
        values = []
        for key in KEYS:
            given = {v for v in (query.getlist(key) if hasattr(query, "getlist") else [query.get(key)]) if v}
            values.append(None if not given else given.pop() if len(given) == 1 else CONFLICT)
        return cls(*values)

    @property
    def active(self) -> bool:
        return any(getattr(self, key) is not None for key in KEYS)

    def keeps(self, values: Mapping[str, str]) -> bool:
        """True if every set value equals the item's own (string equality, no case folding)."""
        for key in KEYS:
            wanted = getattr(self, key)
            if wanted is not None and (len(wanted) > MAX_VALUE or values.get(key, "") != wanted):
                return False
        return True

    def keeps_held(self, held: Any) -> bool:
        return self.keeps(held_values(held))

    def keeps_row(self, row: Mapping[str, Any]) -> bool:
        return self.keeps(row_values(row))

    def as_dict(self) -> dict[str, str]:
        return {key: value for key in KEYS if (value := getattr(self, key)) is not None and len(value) <= MAX_VALUE}


def held_values(held: Any) -> dict[str, str]:
    """A held call's machine, agent and server ("" when the row predates identities)."""
    identity = held.identity
    return {
        "machine": identity.machine if identity else "",
        "agent": identity.agent if identity else "",
        "server": held.server or "",
    }


def row_values(row: Mapping[str, Any]) -> dict[str, str]:
    """The same for a public audit row (its identity decoded by audit.public)."""
    identity = row.get("identity")
    identity = identity if isinstance(identity, Mapping) else {}
    return {
        "machine": str(identity.get("machine") or ""),
        "agent": str(identity.get("agent") or ""),
        "server": str(row.get("server") or ""),
    }


def facets(items: Iterable[Mapping[str, str]]) -> dict[str, list[str]]:
    """The values present, per key, sorted (what the page's selects offer)."""
    found: dict[str, set[str]] = {key: set() for key in KEYS}
    for values in items:
        for key in KEYS:
            if values.get(key):
                found[key].add(values[key])
    return {key: sorted(found[key]) for key in KEYS}


def merge(*groups: dict[str, list[str]]) -> dict[str, list[str]]:
    return {key: sorted({v for group in groups for v in group.get(key, ())}) for key in KEYS}


# ------------------------------------------------------------------ the proxies connected to the store


def proxies(store: Any, now: float) -> list[dict[str, Any]]:
    """Every proxy that recorded itself in the store (at start and on each policy reload), with
    whether it still runs: `live` or `gone` for this host's proxies (their pid is checked),
    `unknown` for another host's (this page cannot see its processes). Live ones first."""
    out = []
    for info in store.proxies():
        pid = info.get("pid")
        state = proxy_state(store, info)
        noted = info.get("noted_at")
        out.append(
            {
                "machine": str(info.get("machine") or info.get("host") or ""),
                "agent": str(info.get("agent") or ""),
                "owner": str(info.get("owner") or ""),
                "host": str(info.get("host") or ""),
                "pid": pid if isinstance(pid, int) else None,
                "servers": [str(s) for s in info.get("servers") or [] if isinstance(s, str)],
                "policy": str(info.get("source") or ""),
                "kind": str(info.get("kind") or ""),
                "policy_hash": str(info.get("hash") or "")[:12],
                "noted_at": noted if isinstance(noted, (int, float)) else None,
                "age": round(now - noted, 1) if isinstance(noted, (int, float)) else None,
                "state": state,
                "stale": state == "gone",
            }
        )
    order = {"live": 0, "unknown": 1, "gone": 2}
    return sorted(out, key=lambda p: (order[p["state"]], p["machine"], p["agent"], p["pid"] or 0))


def proxy_state(store: Any, info: Mapping[str, Any]) -> str:
    """`live`, `gone` or `unknown`. This host's proxies: their pid and lease (liveness.py), as for
    a held call. Another host's: only a store that keeps leases itself (`proxy_gone`, PostgreSQL's
    heartbeats) can tell, and only if the proxy recorded its lease."""
    pid, lease, host = info.get("pid"), info.get("lease"), str(info.get("host") or "")
    if not isinstance(pid, int) or pid <= 0:
        return "unknown"
    probe = SimpleNamespace(proxy_pid=pid, proxy_host=host, proxy_lease=lease if isinstance(lease, str) else None)
    if host == socket.gethostname():
        return "gone" if proxy_gone(probe) else "live"
    judge = getattr(store, "proxy_gone", None)
    if judge is None or probe.proxy_lease is None:
        return "unknown"
    return "gone" if judge(probe) else "live"


def proxy_facets(listed: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Filter choices from the running proxies (so a machine can be chosen before it holds a call)."""
    return facets(
        {"machine": p["machine"], "agent": p["agent"], "server": server}
        for p in listed
        if not p["stale"]
        for server in (p["servers"] or [""])
    )
