"""Several upstreams behind one session: merged handshakes and lists, routed requests.

Tools and prompts are namespaced `server.name`; resources keep their URIs and are routed by
the server that listed them (or whose URI template matches). Server→client requests get ids
unique across upstreams and are mapped back when the client answers. Lists are fetched whole
(every page) from each upstream and returned as one page.

`Aggregate` is the bottom layer (layers.py) of a session with several upstreams.
"""

from __future__ import annotations

import itertools
import logging
import re
from typing import Any

import anyio

from signoff import __version__
from signoff.errors import UpstreamError
from signoff.relay import jsonrpc
from signoff.relay.context import SessionContext
from signoff.relay.eras import KNOWN_VERSIONS
from signoff.relay.layers import Frame
from signoff.relay.passthrough import Route
from signoff.relay.upstream import Upstream

log = logging.getLogger("signoff.aggregate")

MAX_PAGES = 100

# method → (capability that must be advertised, key of the list in the result, namespaced?)
LISTS = {
    "tools/list": ("tools", "tools", True),
    "prompts/list": ("prompts", "prompts", True),
    "resources/list": ("resources", "resources", False),
    "resources/templates/list": ("resources", "resourceTemplates", False),
}


def merge_capabilities(all_caps: list[dict[str, Any]]) -> dict[str, Any]:
    """Union of the upstreams' capabilities: advertise what at least one of them has, no more."""
    merged: dict[str, Any] = {}
    for caps in all_caps:
        for key, value in caps.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                inner = dict(merged[key])
                for k, v in value.items():
                    inner[k] = (inner.get(k) or v) if isinstance(v, bool) else inner.get(k, v)
                merged[key] = inner
            elif key not in merged:
                merged[key] = value
    return merged


def template_regex(template: str) -> re.Pattern[str]:
    """An RFC 6570 URI template as a regex: `{x}` matches one path segment, `{+x}` anything."""
    parts = re.split(r"(\{[^}]*\})", template)
    out = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            out.append(".*" if part[1:2] in "+#" else "[^/]*")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


class Aggregate(Route):
    """Several upstreams behind one session."""

    def __init__(self, ctx: SessionContext):
        super().__init__(ctx)
        self.capabilities: dict[Upstream, dict[str, Any]] = {}
        self.resource_owner: dict[str, Upstream] = {}
        self.templates: list[tuple[re.Pattern[str], str, Upstream]] = []
        self.server_requests: dict[str, tuple[Upstream, Any]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ client requests

    def route(self, name: str) -> tuple[Upstream, str] | None:
        """`server.tool` → (that server's upstream, `tool`); None for a name no upstream has."""
        server, dot, tool = name.partition(".")
        if dot and server in self.ctx.by_name:
            return self.ctx.by_name[server], tool
        return None

    async def request(self, frame: Frame) -> None:
        raw, msg = frame.raw, frame.msg
        method = msg["method"]
        if method == "ping":
            await self.ctx.send_client(jsonrpc.result(msg["id"], {}))
        elif method == "server/discover":
            # Several upstreams are aggregated over the handshake revisions: a probing client
            # falls back to `initialize` on this answer.
            await self.ctx.send_client(jsonrpc.error(msg["id"], jsonrpc.METHOD_NOT_FOUND, "Method not found: server/discover"))
        elif method in ("initialize", "logging/setLevel") or method in LISTS:
            self.ctx.start_soon(self._fan_out, msg)
        elif method == "prompts/get":
            await self._routed_by_name(msg)
        elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            await self.ctx.forward(self._owner_of((msg.get("params") or {}).get("uri")), raw, msg)
        elif method == "completion/complete":
            await self._complete(raw, msg)
        else:
            await self.ctx.forward(self.ctx.upstreams[0], raw, msg)

    async def _routed_by_name(self, msg: dict[str, Any]) -> None:
        params = dict(msg.get("params") or {})
        target = self.route(str(params.get("name", "")))
        if target is None:
            await self.ctx.send_client(jsonrpc.error(msg["id"], jsonrpc.INVALID_PARAMS, f"Unknown prompt: {params.get('name')}"))
            return
        up, name = target
        params["name"] = name
        await self.ctx.forward(up, {**msg, "params": params}, msg)

    async def _complete(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        params = dict(msg.get("params") or {})
        ref = dict(params.get("ref") or {})
        if ref.get("type") == "ref/prompt":
            target = self.route(str(ref.get("name", "")))
            if target is None:
                await self.ctx.send_client(jsonrpc.error(msg["id"], jsonrpc.INVALID_PARAMS, f"Unknown prompt: {ref.get('name')}"))
                return
            up, ref["name"] = target
            await self.ctx.forward(up, {**msg, "params": {**params, "ref": ref}}, msg)
            return
        uri = str(ref.get("uri", ""))
        owner = next((up for _, template, up in self.templates if template == uri), None)
        await self.ctx.forward(owner or self._owner_of(uri), raw, msg)

    def _owner_of(self, uri: Any) -> Upstream:
        uri = str(uri)
        if uri in self.resource_owner:
            return self.resource_owner[uri]
        for pattern, _, up in self.templates:
            if pattern.match(uri):
                return up
        with_resources = [up for up in self.ctx.upstreams if "resources" in self.capabilities.get(up, {})]
        return (with_resources or self.ctx.upstreams)[0]

    async def _ask(self, up: Upstream, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        try:
            await self.ctx.ensure_running(up, replay=method != "initialize")
            return await self.ctx.request_upstream(up, method, params, timeout=up.spec.timeout)
        except UpstreamError as exc:
            return jsonrpc.error(None, jsonrpc.UPSTREAM_ERROR, str(exc))

    async def _fan_out(self, msg: dict[str, Any]) -> None:
        method, params = msg["method"], msg.get("params")
        if method in LISTS:
            capability = LISTS[method][0]
            targets = [up for up in self.ctx.upstreams if capability in self.capabilities.get(up, {})]
        else:
            targets = list(self.ctx.upstreams)
        answers: dict[Upstream, dict[str, Any]] = {}

        async def one(up: Upstream) -> None:
            answers[up] = await (self._list_all(up, method) if method in LISTS else self._ask(up, method, params))

        async with anyio.create_task_group() as tg:
            for up in targets:
                tg.start_soon(one, up)
        ordered = [(up, answers[up]) for up in targets]
        if method == "initialize":
            answer = self._merge_initialize(msg["id"], ordered)
        elif method in LISTS:
            answer = self._merge_list(msg["id"], method, ordered)
        else:
            errors = [a for _, a in ordered if "error" in a]
            answer = {**errors[0], "id": msg["id"]} if errors and len(errors) == len(ordered) else jsonrpc.result(msg["id"], {})
        await self.ctx.send_client(answer)

    async def _list_all(self, up: Upstream, method: str) -> dict[str, Any]:
        key = LISTS[method][1]
        items: list[Any] = []
        cursor = None
        for _ in range(MAX_PAGES):
            answer = await self._ask(up, method, {"cursor": cursor} if cursor else None)
            if "error" in answer:
                return answer
            result = answer.get("result") or {}
            items.extend(result.get(key) or [])
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return jsonrpc.result(None, {key: items})

    def _merge_initialize(self, request_id: Any, answers: list[tuple[Upstream, dict[str, Any]]]) -> dict[str, Any]:
        good = [(up, a["result"]) for up, a in answers if isinstance(a.get("result"), dict)]
        for up, a in answers:
            if "error" in a:
                log.error("upstream %s did not initialize: %s", up.name, (a["error"] or {}).get("message"))
        if not good:
            text = "; ".join(str((a.get("error") or {}).get("message")) for _, a in answers)
            return jsonrpc.error(request_id, jsonrpc.UPSTREAM_ERROR, f"no wrapped server could start: {text}")
        for up, answer in good:
            self.capabilities[up] = answer.get("capabilities") or {}
        versions = [r.get("protocolVersion") for _, r in good]
        known = [v for v in versions if v in KNOWN_VERSIONS]
        version = min(known, key=KNOWN_VERSIONS.index) if known else versions[0]
        instructions = "\n\n".join(f"[{up.name}] {r['instructions']}" for up, r in good if r.get("instructions"))
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": merge_capabilities([self.capabilities[up] for up, _ in good]),
            "serverInfo": {"name": "signoff", "version": __version__},
        }
        if instructions:
            result["instructions"] = instructions
        return jsonrpc.result(request_id, result)

    def _merge_list(self, request_id: Any, method: str, answers: list[tuple[Upstream, dict[str, Any]]]) -> dict[str, Any]:
        _, key, namespaced = LISTS[method]
        merged: list[Any] = []
        for up, answer in answers:
            if "error" in answer:
                log.warning("%s from %s failed: %s", method, up.name, (answer["error"] or {}).get("message"))
                continue
            items = (answer.get("result") or {}).get(key) or []
            if method == "tools/list":
                self.ctx.learn_tools(up, answer)
            for item in items:
                if not isinstance(item, dict):
                    continue
                if namespaced and isinstance(item.get("name"), str):
                    item = {**item, "name": f"{up.name}.{item['name']}"}
                elif method == "resources/list" and isinstance(item.get("uri"), str):
                    self.resource_owner[item["uri"]] = up
                elif method == "resources/templates/list" and isinstance(item.get("uriTemplate"), str):
                    self.templates.append((template_regex(item["uriTemplate"]), item["uriTemplate"], up))
                merged.append(item)
        return jsonrpc.result(request_id, {key: merged})

    # ------------------------------------------------------------------ client notifications / responses

    async def notification(self, frame: Frame) -> None:
        raw, msg = frame.raw, frame.msg
        if msg["method"] == "notifications/cancelled":
            request_id = (msg.get("params") or {}).get("requestId")
            for up, pending in self.ctx.pending.items():
                for key, entry in pending.items():
                    if entry.client_id == request_id:
                        params = {**msg["params"], "requestId": key}
                        await self.ctx.send_upstream(up, {**msg, "params": params})
                        return
            return
        for up in self.ctx.upstreams:
            await self.ctx.send_upstream(up, raw or msg)

    async def response(self, frame: Frame) -> None:
        msg = frame.msg
        target = self.server_requests.pop(str(msg.get("id")), None)
        if target is None:
            log.warning("client answered an unknown server request %r", msg.get("id"))
            return
        up, original = target
        await self.ctx.send_upstream(up, {**msg, "id": original})

    # ------------------------------------------------------------------ upstream requests / notifications

    async def handle_upstream(self, frame: Frame) -> None:
        up, msg = frame.upstream, frame.msg
        if frame.pending is not None or up is None:  # an answer: nothing to remap
            await self.above.handle_upstream(frame)
            return
        if frame.kind == jsonrpc.REQUEST:
            if msg["method"] == "ping":
                await self.ctx.send_upstream(up, jsonrpc.result(msg["id"], {}))
                return
            proxy_id = f"{up.name}:{next(self._ids)}"
            self.server_requests[proxy_id] = (up, msg["id"])
            await self.above.handle_upstream(Frame({**msg, "id": proxy_id}, None, frame.kind, up))
            return
        if msg["method"] == "notifications/cancelled":
            original = (msg.get("params") or {}).get("requestId")
            for proxy_id, (owner, orig) in list(self.server_requests.items()):
                if owner is up and orig == original:
                    del self.server_requests[proxy_id]
                    msg = {**msg, "params": {**msg["params"], "requestId": proxy_id}}
                    await self.above.handle_upstream(Frame(msg, None, frame.kind, up))
                    return
            return
        await self.above.handle_upstream(frame)
