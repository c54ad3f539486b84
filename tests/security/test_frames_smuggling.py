"""Issue #10 item 1: one client frame must never carry a second, unchecked message upstream.

Each attack is sent as raw bytes through signoff's real stdio frame path to the naive server
(which splits on every line separator, keeps the first of duplicate keys and reads keys
case-insensitively); the same bytes sent to the naive server directly show the attack is real.
The `\\r` smuggling is also run for real against mcp-server-git and mcp-server-time (Python SDK
servers, which read stdin with universal newlines), directly and through `signoff run`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from conftest import git_server, through_signoff
from harness import running
from security.support import RecordingGate, barrier, naive_command, naive_log, naive_ran, naive_spec, raw_process
from signoff.relay import jsonrpc

pytestmark = pytest.mark.anyio

DELETE = '{"jsonrpc":"2.0","id":"smuggled","method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/x"}}}'

ATTACKS = {
    # a ping whose params hide a held call between two bare CRs (JSON whitespace)
    "cr_inside_ping": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":[\r' + DELETE.encode() + b"\r]}}\n",
    "cr_inside_allowed_call": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}},'
        b'"x":[\r' + DELETE.encode() + b"\r]}\n"
    ),
    "cr_inside_batch": b'[{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":[\r' + DELETE.encode() + b"\r]}}]\n",
    "duplicate_name_first_wins": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file","name":"echo","arguments":{}}}\n'
    ),
    "duplicate_name_hidden_by_escape": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file","n\\u0061me":"echo","arguments":{}}}\n'
    ),
    "case_variant_name": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"delete_file","arguments":{}}}\n'
    ),
    "response_carrying_a_method_variant": (
        b'{"jsonrpc":"2.0","id":1,"result":{},"METHOD":"tools/call","params":{"name":"delete_file","arguments":{}}}\n'
    ),
    "case_variant_method": (
        b'{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"delete_file","arguments":{}}}\n'
    ),
}

REFUSED = {
    "kelvin_sign_case_variant": (
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"\u212aey":"a","key":"b"}}}\n'
    ).encode(),
    "invalid_utf8": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\xff\xfe"}}}\n',
    "lone_surrogate": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\\ud800"}}}\n',
    "bom": b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
    "nul_in_path": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"path":"/etc/shadow\\u0000.txt"}}}\n',
    "infinite_number": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"amount":1e400}}}\n',
    "integer_js_rounds": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"amount":9007199254740993}}}\n',
    "proto_key": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"__proto__":{"admin":true}}}}\n',
    "deep_nesting": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + b"[" * 5000 + b"]" * 5000 + b"}}\n",
    "deep_nesting_within_parser_limit": b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":'
    + b"[" * 500
    + b"]" * 500
    + b"}}\n",
    "two_messages_on_one_line": b'{"jsonrpc":"2.0","id":1,"method":"ping"}\r' + DELETE.encode() + b"\n",
    "request_that_is_also_a_response": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","result":{},"params":{"name":"echo","arguments":{}}}\n'
    ),
    "unhashable_id": b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"echo","arguments":{}}}\n',
}


async def _through_signoff(tmp_path: Path, frame: bytes) -> tuple[RecordingGate, list, Path]:
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        await client.send_raw(frame)
        await barrier(client)
        answers = list(client.received)
    return gate, answers, log


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_smuggled_call_never_reaches_the_naive_server(tmp_path: Path, attack: str) -> None:
    _gate, _, log = await _through_signoff(tmp_path, ATTACKS[attack])
    assert "delete_file" not in naive_ran(log)
    assert not [e for e in naive_log(log) if "unparsed" in e], "the naive server saw a broken frame"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_the_same_bytes_sent_directly_do_run_the_hidden_call(tmp_path: Path, attack: str) -> None:
    """The control: without signoff the naive server runs delete_file, so the test above can fail."""
    log = tmp_path / "naive.log"
    async with raw_process(naive_command(log)) as server:
        await server.write(ATTACKS[attack])
        await server.request("barrier", "ping")
    assert "delete_file" in naive_ran(log)


@pytest.mark.parametrize("attack", sorted(ATTACKS) + sorted(REFUSED))
async def test_ambiguous_frames_are_refused_with_an_answer_and_serving_continues(tmp_path: Path, attack: str) -> None:
    frame = ATTACKS.get(attack) or REFUSED[attack]
    gate, answers, log = await _through_signoff(tmp_path, frame)
    if attack.startswith("cr_inside"):  # valid JSON: relayed, but as one canonical line
        return
    errors = [m for m in answers if "error" in m and m.get("id") in (1, None)]
    assert errors, f"{attack}: no error answered"
    assert errors[0]["error"]["code"] in (jsonrpc.PARSE_ERROR, jsonrpc.INVALID_REQUEST)
    assert gate.checked == [], "a refused frame reached the gate"
    assert naive_ran(log) == []
    assert {e.get("method") for e in naive_log(log)} <= {"initialize", "notifications/initialized", "tools/list", "ping"}


async def test_line_separators_in_strings_arrive_escaped_not_raw(tmp_path: Path) -> None:
    """U+2028, U+2029, U+0085 are legal raw in JSON strings; a splitlines() reader would cut there."""
    text = "a\u2028b\u2029c\x85d\re\nf\x0bg\x0ch\u200bi"
    frame = (
        json.dumps(jsonrpc.request(1, "tools/call", {"name": "echo", "arguments": {"text": text}}), ensure_ascii=False).encode()
        + b"\n"
    )
    assert "\u2028".encode() in frame
    _gate, _answers, log = await _through_signoff(tmp_path, frame)
    ran = [e for e in naive_log(log) if "ran" in e]
    assert ran == [{"ran": "echo", "arguments": {"text": text}}]
    assert not [e for e in naive_log(log) if "unparsed" in e]


# ------------------------------------------------------------------ real Python SDK servers


def _smuggle(request_id: str, inner: dict) -> bytes:
    return (
        b'{"jsonrpc":"2.0","id":"'
        + request_id.encode()
        + b'","method":"ping","params":{"x":[\r'
        + json.dumps(inner).encode()
        + b"\r]}}\n"
    )


def _git_branches(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "branch", "--format=%(refname:short)"], check=True, capture_output=True, text=True
    ).stdout
    return out.split()


@pytest.mark.e2e
@pytest.mark.parametrize("through", [False, True], ids=["direct", "through-signoff"])
async def test_cr_smuggled_git_create_branch_against_mcp_server_git(tmp_path: Path, git_repo: Path, through: bool) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: 'git.git_create_branch'\n    decision: deny\n")
    command = git_server(git_repo)
    if through:
        command = through_signoff(command, "--name", "git", "--policy", str(policy))
    hidden = jsonrpc.request(
        "hidden",
        "tools/call",
        {"name": "git_create_branch", "arguments": {"repo_path": str(git_repo), "branch_name": "smuggled"}},
    )
    async with raw_process(command) as client:
        await client.initialize()
        await client.write(_smuggle("p1", hidden))
        await client.wait_for(lambda m: m.get("id") == "p1" or m.get("id") == "hidden")
        status = await client.request("s", "tools/call", {"name": "git_status", "arguments": {"repo_path": str(git_repo)}})
        assert "result" in status
        if not through:  # the SDK split the frame at the CRs and ran the hidden call
            await client.wait_for(lambda m: m.get("id") == "hidden")
    assert ("smuggled" in _git_branches(git_repo)) is (not through)
    if through:
        assert not [m for m in client.received if m.get("id") == "hidden"]


@pytest.mark.e2e
@pytest.mark.parametrize("through", [False, True], ids=["direct", "through-signoff"])
async def test_cr_smuggled_call_against_mcp_server_time(tmp_path: Path, through: bool) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: 'time.convert_time'\n    decision: deny\n")
    command = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
    if through:
        command = through_signoff(command, "--name", "time", "--policy", str(policy))
    hidden = jsonrpc.request(
        "hidden",
        "tools/call",
        {"name": "convert_time", "arguments": {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"}},
    )
    async with raw_process(command) as client:
        await client.initialize()
        await client.write(_smuggle("p1", hidden))
        await client.wait_for(lambda m: m.get("id") == "p1" or m.get("id") == "hidden")
        now = await client.request("t", "tools/call", {"name": "get_current_time", "arguments": {"timezone": "UTC"}})
        assert "result" in now
        if not through:
            with anyio.fail_after(30):
                await client.wait_for(lambda m: m.get("id") == "hidden")
    hidden_answers = [m for m in client.received if m.get("id") == "hidden"]
    assert bool(hidden_answers) is (not through)


async def test_case_variant_keys_read_by_another_parser_are_refused_too(tmp_path: Path) -> None:
    """HTTP sessions hand the relay messages the SDK parsed: the same value checks apply there."""
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        message = jsonrpc.request("sdk-1", "tools/call", {"name": "echo", "Name": "delete_file", "arguments": {}})
        await client.proxy.from_client(None, message)
        answer = await client.wait_for(lambda m: m.get("id") == "sdk-1")
        await barrier(client)
    assert answer["error"]["code"] == jsonrpc.INVALID_REQUEST and "differ only by case" in answer["error"]["message"]
    assert gate.checked == [] and naive_ran(log) == []


async def test_reused_in_flight_request_id_cannot_take_over_an_answer_or_its_audit_row(tmp_path: Path) -> None:
    """Two calls under one id: the second would inherit the first's pending entry (answer, audit)."""
    import sys as _sys

    from signoff.relay.upstream import ServerSpec

    gate = RecordingGate()
    fake = ServerSpec(name="fake", command=_sys.executable, args=("-m", "signoff.testing", "--name", "fake"))
    async with running([fake], gate) as client:
        await client.initialize()
        await client.send(jsonrpc.request("dup", "tools/call", {"name": "hang", "arguments": {}}))
        await client.send(jsonrpc.request("dup", "tools/call", {"name": "echo", "arguments": {"text": "x"}}))
        answer = await client.wait_for(lambda m: m.get("id") == "dup")
        assert answer["error"]["code"] == jsonrpc.INVALID_REQUEST and "already in use" in answer["error"]["message"]
        assert [c.tool for c in gate.checked] == ["hang"]
        assert "hang" in [p.call.tool for p in client.proxy.pending[client.proxy.upstreams[0]].values() if p.call]


async def test_upstream_cannot_forge_the_result_of_a_call_it_never_received(tmp_path: Path) -> None:
    """An answer to an id the upstream was never sent (a held or refused call) is dropped."""
    log = tmp_path / "naive.log"
    gate = RecordingGate()
    async with running([naive_spec(log)], gate) as client:
        await client.initialize()
        refused = await client.call("delete_file", {"path": "/x"})
        assert refused["result"]["isError"] is True
        await client.send(jsonrpc.request("f", "tools/call", {"name": "forge", "arguments": {"id": refused["id"]}}))
        await client.wait_for(lambda m: m.get("id") == "f")
        await barrier(client)
    assert [m for m in client.received if m.get("id") == refused["id"]] == [refused]


async def test_deeply_nested_upstream_frame_does_not_crash_the_relay(tmp_path: Path) -> None:
    """json.loads raises RecursionError on very deep nesting: an upstream frame like that is logged."""
    assert jsonrpc.decode(b'{"jsonrpc":"2.0","id":1,"result":{}}')["id"] == 1
    with pytest.raises(jsonrpc.FrameError):
        jsonrpc.decode(b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
