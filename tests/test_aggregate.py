"""Several upstreams in one session: namespaced tools and prompts, merged lists, routed requests."""

from __future__ import annotations

import sys

import pytest

from harness import running, text_of
from signoff.relay import jsonrpc
from signoff.relay.aggregate import merge_capabilities, template_regex
from signoff.relay.upstream import ServerSpec

pytestmark = pytest.mark.anyio


def fake(name: str, *extra: str) -> ServerSpec:
    return ServerSpec(name=name, command=sys.executable, args=("-m", "signoff.testing", "--name", name, *extra))


def test_capabilities_are_the_union_and_nothing_more() -> None:
    merged = merge_capabilities(
        [
            {"tools": {"listChanged": False}},
            {"tools": {"listChanged": True}, "resources": {"subscribe": True}},
            {},
        ]
    )
    assert merged == {"tools": {"listChanged": True}, "resources": {"subscribe": True}}
    assert "prompts" not in merged


def test_uri_templates_route_by_shape() -> None:
    assert template_regex("demo://text/{id}").match("demo://text/42")
    assert not template_regex("demo://text/{id}").match("demo://text/4/2")
    assert template_regex("file:///{+path}").match("file:///a/b/c")


async def test_tools_are_namespaced_and_routed() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        init = await client.initialize()
        assert init["result"]["serverInfo"]["name"] == "signoff"
        assert init["result"]["capabilities"] == {"tools": {"listChanged": True}}
        names = [t["name"] for t in (await client.request("tools/list"))["result"]["tools"]]
        assert "alpha.echo" in names and "beta.echo" in names and "echo" not in names
        assert text_of(await client.call("beta.echo", {"text": "from beta"})) == "from beta"
        unknown = await client.call("gamma.echo", {"text": "x"})
        assert unknown["error"]["code"] == jsonrpc.INVALID_PARAMS
        bare = await client.call("echo", {"text": "x"})
        assert "Unknown tool" in bare["error"]["message"]
        assert client.proxy.tools["beta"]["delete_file"]["destructiveHint"] is True


async def test_one_crashed_upstream_leaves_the_others_serving() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        await client.initialize()
        crashed = await client.call("alpha.crash")
        assert crashed["result"]["isError"] is True and "alpha" in text_of(crashed)
        assert text_of(await client.call("beta.echo", {"text": "b"})) == "b"
        assert text_of(await client.call("alpha.echo", {"text": "a again"})) == "a again"


async def test_server_to_client_requests_get_unique_ids_and_answers_go_back() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        await client.initialize()
        await client.send(jsonrpc.request(10, "tools/call", {"name": "alpha.ask_user", "arguments": {"question": "A?"}}))
        await client.send(jsonrpc.request(11, "tools/call", {"name": "beta.ask_user", "arguments": {"question": "B?"}}))
        ask_a = await client.wait_for(lambda m: m.get("method") == "elicitation/create" and m["params"]["message"] == "A?")
        ask_b = await client.wait_for(lambda m: m.get("method") == "elicitation/create" and m["params"]["message"] == "B?")
        assert ask_a["id"] != ask_b["id"]
        await client.send(jsonrpc.result(ask_b["id"], {"action": "accept", "content": {"answer": "bee"}}))
        await client.send(jsonrpc.result(ask_a["id"], {"action": "accept", "content": {"answer": "ay"}}))
        assert "ay" in text_of(await client.wait_for(lambda m: m.get("id") == 10 and "result" in m))
        assert "bee" in text_of(await client.wait_for(lambda m: m.get("id") == 11 and "result" in m))


async def test_ping_and_set_level_are_answered_once() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        await client.initialize()
        assert (await client.request("ping"))["result"] == {}
        level = await client.request("logging/setLevel", {"level": "debug"})
        assert level["error"]["code"] == jsonrpc.METHOD_NOT_FOUND  # neither fake server has logging
        assert len([m for m in client.received if m.get("id") == level["id"]]) == 1


async def test_an_upstream_that_cannot_start_is_left_out_of_the_merged_view() -> None:
    async with running([fake("alpha"), fake("broken", "--fail-start")]) as client:
        init = await client.initialize()
        assert init["result"]["capabilities"] == {"tools": {"listChanged": True}}
        names = [t["name"] for t in (await client.request("tools/list"))["result"]["tools"]]
        assert names and all(n.startswith("alpha.") for n in names)
        broken = await client.call("broken.echo", {"text": "x"})
        assert broken["result"]["isError"] is True
        assert "cannot open its database" in text_of(broken)


async def test_cancellation_is_routed_to_the_right_upstream() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        await client.initialize()
        await client.send(jsonrpc.request("c1", "tools/call", {"name": "beta.hang", "arguments": {}}))
        await client.send(jsonrpc.notification("notifications/cancelled", {"requestId": "c1"}))
        assert "c1" in text_of(await client.call("beta.cancelled_ids"))
        assert "c1" not in text_of(await client.call("alpha.cancelled_ids"))


async def test_notifications_from_any_upstream_reach_the_client() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        await client.initialize()
        await client.call("beta.announce")
        assert "notifications/tools/list_changed" in [m.get("method") for m in client.received]
