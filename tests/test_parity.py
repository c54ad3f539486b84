"""Parity: for a transparent proxy, "same answers as the real server" is the specification.

Each scenario runs twice with the SDK's ClientSession — once against the real server, once
through `signoff run` — and the observable results must be equal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from conftest import connect, everything, git_server, through_signoff, time_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value


async def attempt(awaitable: Any) -> Any:
    """The result, or the JSON-RPC error as data: errors must match too."""
    try:
        return dump(await awaitable)
    except MCPError as exc:
        return {"error": exc.error.code, "message": exc.error.message}


async def both(scenario, command: list[str], **session: Any) -> tuple[Any, Any]:
    """Run `scenario(client)` directly and through signoff; return both outcomes."""
    outcomes = []
    for cmd in (command, through_signoff(command)):
        async with connect(cmd, **session) as client:
            with anyio.fail_after(60):
                outcomes.append(await scenario(client))
    return outcomes[0], outcomes[1]


# ---------------------------------------------------------------------------- mcp-server-time


def _no_clock(value: Any) -> Any:
    text = repr(value)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^'\"]*", "<time>", text)


async def test_time_server_parity() -> None:
    async def scenario(client) -> Any:
        out: dict[str, Any] = {}
        tools = await client.list_tools()
        out["tools"] = dump(tools.tools)
        now = await client.call_tool("get_current_time", {"timezone": "Europe/Paris"})
        out["now"] = _no_clock(dump(now))
        converted = await client.call_tool(
            "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        )
        out["convert"] = _no_clock(dump(converted))
        bad = await client.call_tool("get_current_time", {"timezone": "Not/AZone"})
        out["bad_timezone"] = dump(bad)
        out["unknown_tool"] = await attempt(client.call_tool("no_such_tool", {}))
        return out

    direct, proxied = await both(scenario, time_server())
    assert proxied == direct
    assert direct["bad_timezone"]["isError"] is True
    assert "Tokyo" in direct["convert"]


async def test_time_server_handshake_parity() -> None:
    infos = []
    for cmd in (time_server(), through_signoff(time_server())):
        async with connect(cmd) as client:
            infos.append((client.server_info, client.protocol_version, client.server_capabilities))
    assert infos[0] == infos[1]


# ---------------------------------------------------------------------------- mcp-server-git


async def test_git_server_parity(git_repo: Path) -> None:
    async def scenario(client) -> Any:
        out: dict[str, Any] = {}
        out["tools"] = dump((await client.list_tools()).tools)
        out["status"] = dump(await client.call_tool("git_status", {"repo_path": str(git_repo)}))
        log = await client.call_tool("git_log", {"repo_path": str(git_repo), "max_count": 5})
        out["log"] = re.sub(r"[0-9a-f]{40}|Date: [^\\]*", "<x>", repr(dump(log)))
        out["bad_rev"] = dump(await client.call_tool("git_show", {"repo_path": str(git_repo), "revision": "nope"}))
        out["bad_args"] = await attempt(client.call_tool("git_status", {}))
        return out

    direct, proxied = await both(scenario, git_server(git_repo))
    assert proxied == direct
    assert "first" in direct["log"]
    assert direct["bad_rev"]["isError"] is True


# ---------------------------------------------------------------------------- server-everything


async def _sampling(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sampled answer"), model="test-model"
    )


async def _elicit(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada", "color": "blue"})


async def _roots(context) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/project", name="project")])


CALLBACKS = {"sampling_callback": _sampling, "elicitation_callback": _elicit, "list_roots_callback": _roots}


async def test_everything_tools_parity() -> None:
    async def scenario(client) -> Any:
        out: dict[str, Any] = {}
        tools = (await client.list_tools()).tools
        out["tools"] = dump(tools)
        out["echo"] = dump(await client.call_tool("echo", {"message": "hi"}))
        out["sum"] = dump(await client.call_tool("get-sum", {"a": 2, "b": 40}))
        out["structured"] = dump(await client.call_tool("get-structured-content", {"location": "New York"}))
        out["image"] = dump(await client.call_tool("get-tiny-image", {}))
        out["annotated"] = dump(await client.call_tool("get-annotated-message", {"messageType": "error", "includeImage": True}))
        out["links"] = dump(await client.call_tool("get-resource-links", {"count": 2}))
        out["bad_args"] = await attempt(client.call_tool("get-sum", {"a": "x"}))
        return out

    direct, proxied = await both(scenario, everything(), **CALLBACKS)
    assert proxied == direct
    assert "42" in repr(direct["sum"])
    assert "image" in [item["type"] for item in direct["image"]["content"]]
    assert direct["structured"].get("structuredContent")


async def test_everything_server_to_client_requests_parity() -> None:
    """Sampling, elicitation and roots requests reach the real client; answers come back."""

    async def scenario(client) -> Any:
        names = {t.name for t in (await client.list_tools()).tools}
        out: dict[str, Any] = {"names": sorted(names)}
        out["sampling"] = dump(await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 10}))
        out["elicitation"] = dump(await client.call_tool("trigger-elicitation-request", {}))
        out["roots"] = dump(await client.call_tool("get-roots-list", {}))
        return out

    direct, proxied = await both(scenario, everything(), **CALLBACKS)
    assert proxied == direct
    assert "sampled answer" in repr(direct["sampling"])
    assert "Ada" in repr(direct["elicitation"])
    assert "file:///tmp/project" in repr(direct["roots"])


async def test_everything_progress_parity() -> None:
    async def scenario(client) -> Any:
        updates: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append((progress, total))

        result = await client.call_tool(
            "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
        )
        return {"result": dump(result), "updates": updates}

    direct, proxied = await both(scenario, everything())
    assert proxied == direct
    assert len(direct["updates"]) == 3


async def test_everything_resources_and_prompts_parity() -> None:
    async def scenario(client) -> Any:
        out: dict[str, Any] = {}
        resources = (await client.list_resources()).resources
        out["resources"] = dump(resources)
        out["templates"] = dump((await client.list_resource_templates()).resource_templates)
        out["read_static"] = dump(await client.read_resource(resources[0].uri))
        dynamic = dump(await client.read_resource("demo://resource/dynamic/text/1"))
        out["read_template"] = re.sub(r"\d+:\d\d:\d\d [AP]M", "<time>", repr(dynamic))
        out["prompts"] = dump((await client.list_prompts()).prompts)
        out["simple"] = dump(await client.get_prompt("simple-prompt"))
        out["args"] = dump(await client.get_prompt("args-prompt", {"city": "Paris", "state": "TX"}))
        completion = await client.complete(
            types.PromptReference(type="ref/prompt", name="completable-prompt"),
            {"name": "department", "value": "E"},
        )
        out["complete"] = dump(completion)
        out["subscribe"] = dump(await client.subscribe_resource(resources[0].uri))
        out["unsubscribe"] = dump(await client.unsubscribe_resource(resources[0].uri))
        out["ping"] = dump(await client.send_ping())
        return out

    direct, proxied = await both(scenario, everything())
    assert proxied == direct
    assert direct["resources"] and direct["prompts"]


async def test_everything_logging_parity() -> None:
    """logging/setLevel goes up, log message notifications come down."""

    async def scenario(client) -> Any:
        got = anyio.Event()
        messages: list[str] = []

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            messages.append(params.level)
            got.set()

        client._logging_callback = on_log  # noqa: SLF001 - the SDK takes it at construction only
        await client.set_logging_level("debug")
        await client.call_tool("toggle-simulated-logging", {})
        with anyio.fail_after(30):
            await got.wait()
        await client.call_tool("toggle-simulated-logging", {})
        return {"got_logs": bool(messages)}

    direct, proxied = await both(scenario, everything())
    assert proxied == direct == {"got_logs": True}
