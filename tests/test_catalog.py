"""The catalog of real MCP servers: shipped data is valid and in sync, servers are recognised
from how they are started, look-ups are exact, user files extend it, and the entries for the
servers we can start here match what those servers really list."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import connect, everything, git_server, npm_server, time_server
from signoff.policy import catalog as cat
from signoff.policy import catalog_load
from signoff.policy.catalog import ACTIONS, ROLES, CatalogError
from signoff.policy.catalog_build import build_merged, read_server_file
from signoff.policy.catalog_load import load_catalog

SERVERS = sorted(cat.SERVERS_DIR.glob("*.yaml"))


def test_ships_at_least_30_servers_each_naming_its_source() -> None:
    assert len(SERVERS) >= 30
    for path in SERVERS:
        data = read_server_file(path)
        assert data["id"] == path.stem, path
        assert data["verified"] in ("tools/list", "source"), path
        assert "@" in data["source"], f"{path}: source must name package@version or repo@commit"
        assert data["tools"], path


def test_merged_json_is_in_sync_with_the_yaml_files() -> None:
    assert cat.MERGED.read_text() == build_merged(), "run: python -m signoff.policy.catalog_build"


def test_loading_the_shipped_catalog_is_fast() -> None:
    best = float("inf")
    for _ in range(5):  # CPU time: the machine is shared
        catalog_load._shipped.cache_clear()
        catalog_load._load.cache_clear()
        start = time.process_time()
        catalog = load_catalog()
        catalog.lookup("github", "delete_file")
        best = min(best, time.process_time() - start)
    assert len(catalog) >= 30
    assert best < 0.030, f"loading took {best * 1000:.1f} ms"
    assert load_catalog() is load_catalog(), "loaded once, then cached"


def test_every_entry_uses_the_built_in_vocabulary() -> None:
    catalog = load_catalog()
    for server, tools in catalog.servers.items():
        for name, entry in tools.items():
            assert set(entry.actions) <= set(ACTIONS), (server, name)
            assert set(entry.fields) <= set(ROLES), (server, name)
            assert entry.amount_unit in ("major", "minor")
            assert not (entry.read_only and entry.destructive), (server, name)


@pytest.mark.parametrize(
    ("name", "command", "url", "expected"),
    [
        ("anything", ["npx", "-y", "@modelcontextprotocol/server-github"], None, "github"),
        ("anything", ["npx", "-y", "@modelcontextprotocol/server-github@2025.4.8"], None, "github"),
        (
            "gh",
            ["docker", "run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
            None,
            "github",
        ),
        ("gh", ["docker", "run", "-i", "--rm", "ghcr.io/github/github-mcp-server:v0.20.1"], None, "github"),
        ("x", ["/usr/local/bin/github-mcp-server", "stdio"], None, "github"),
        ("x", ["uvx", "mcp-server-git", "--repository", "/w"], None, "git"),
        ("x", ["python", "-m", "mcp_server_git", "--repository", "/w"], None, "git"),
        ("x", ["uvx", "mcp-server-fetch==2025.4.7"], None, "fetch"),
        (
            "x",
            ["node", "/opt/app/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js", "/tmp"],
            None,
            "filesystem",
        ),
        ("x", ["C:\\Users\\me\\node_modules\\@modelcontextprotocol\\server-filesystem\\dist\\index.js"], None, "filesystem"),
        ("x", ["npx", "-y", "@stripe/mcp", "--tools=all", "--api-key=sk_test_x"], None, "stripe"),
        ("x", ["uvx", "awslabs.aws-api-mcp-server@latest"], None, "aws-api"),
        ("x", ["npx", "-y", "@wonderwhy-er/desktop-commander@latest"], None, "desktop-commander"),
        ("x", ["npx", "@playwright/mcp@latest", "--headless"], None, "playwright"),
        ("x", ["uvx", "mcp-atlassian"], None, "atlassian"),
        ("x", None, "https://api.githubcopilot.com/mcp/", "github"),
        ("x", None, "https://API.GitHubCopilot.com./mcp", "github"),
        ("x", None, "https://mcp.notion.com/mcp", "notion"),
        ("x", ["npx", "-y", "mcp-remote", "https://mcp.stripe.com"], None, "stripe"),
        ("GitHub", None, None, "github"),
        ("github_mcp", None, None, "github"),
        ("Slack MCP Server", None, None, "slack"),
        ("postgres", ["./run-my-own-thing.sh"], None, "postgres"),  # unknown command: the name decides
    ],
)
def test_identify(name, command, url, expected) -> None:
    assert load_catalog().identify(name, command, url) == expected


@pytest.mark.parametrize(
    ("name", "command", "url"),
    [
        ("evil-github", None, None),  # a name that merely contains a known one
        ("x", None, "https://api.githubcopilot.com@evil.example/mcp"),  # userinfo: the host is evil.example
        ("x", None, "https://api.githubcopilot.com.evil.example/mcp"),
        ("x", None, "https://api.githubcopilot.com/mcpx"),  # a prefix only counts at a path boundary
        ("x", ["npx", "-y", "@modelcontextprotocol/server-github-but-not"], None),
        ("x", ["npx", "-y", "--package=evil", "run"], None),
        ("", [], ""),
    ],
)
def test_identify_does_not_guess(name, command, url) -> None:
    assert load_catalog().identify(name, command, url) is None


def test_command_beats_the_configured_name() -> None:
    assert load_catalog().identify("github", ["uvx", "mcp-server-git"]) == "git"


def test_lookup_is_exact() -> None:
    catalog = load_catalog()
    refund = catalog.lookup("stripe", "create_refund")
    assert refund is not None and refund.actions == ("refund",) and refund.amount_unit == "minor"
    assert refund.fields["amount"] == ("args.amount",)
    send = catalog.lookup("gmail", "send_email")
    assert send is not None and set(send.fields["recipient"]) == {"args.to", "args.cc", "args.bcc"}
    reset = catalog.lookup("git", "git_reset")
    assert reset is not None and reset.destructive is True and reset.annotations["destructiveHint"] is True
    assert catalog.lookup("git", "git_status").read_only is True
    assert catalog.lookup("git", "GIT_STATUS") is None
    assert catalog.lookup("git", "git_status ") is None
    assert catalog.lookup("nope", "git_status") is None


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_user_files_add_and_replace_servers(tmp_path: Path) -> None:
    _write(
        tmp_path / "shop.yaml",
        """\
id: shop
title: Our shop
source: "internal/shop-mcp@1.2.0"
verified: source
match: {packages: ["@acme/shop-mcp"]}
tools:
  checkout:
    actions: [purchase]
    read_only: false
    fields: {amount: args.cart.total, currency: args.cart.currency}
""",
    )
    _write(
        tmp_path / "git.yaml",
        """\
id: git
title: Our git
source: "mcp-server-git@0"
verified: source
tools:
  git_status: {actions: [], read_only: true}
""",
    )
    catalog = load_catalog([tmp_path])
    assert catalog.identify("x", ["npx", "@acme/shop-mcp"]) == "shop"
    assert catalog.lookup("shop", "checkout").fields["amount"] == ("args.cart.total",)
    assert catalog.lookup("git", "git_commit") is None, "a user file replaces the shipped server"
    assert load_catalog().lookup("git", "git_commit") is not None, "the shipped catalog is unchanged"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("tools:\n  t: {actions: [payments], read_only: false}\n", "tools.t.actions.0", "payments"),
        ("tools:\n  t: {actions: [], read_only: false, fields: {amount: total}}\n", "tools.t.fields", "args."),
        ("tools:\n  t: {actions: [], read_only: false, fields: {price: args.total}}\n", "tools.t.fields.price", "price"),
        ("tools:\n  t: {actions: [payment], read_only: true}\n", "tools.t", "read_only"),
        ("tools:\n  t: {actions: [], read_only: false, colour: red}\n", "tools.t.colour", "unknown key"),
        ("tools:\n  t: {actions: []}\n", "tools.t.read_only", "required"),
    ],
)
def test_invalid_user_file_is_one_line_naming_file_and_field(tmp_path: Path, body: str, field: str, words: str) -> None:
    path = _write(tmp_path / "bad.yaml", f'id: bad\ntitle: t\nsource: "x@1"\nverified: source\n{body}')
    with pytest.raises(CatalogError) as err:
        load_catalog([path])
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and field in message and words in message, message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "id: bad\ntools: [\n")
    with pytest.raises(CatalogError, match=r"bad\.yaml:\d+"):
        load_catalog([path])


# ---- the entries match the real servers we can start here ------------------------------------


def _schema_keys(schema: dict) -> set[str]:
    return set((schema or {}).get("properties", {}))


@pytest.mark.anyio
@pytest.mark.parametrize("server_id", ["filesystem", "git", "time", "everything"])
async def test_entries_match_the_real_server(server_id: str, tmp_path: Path, git_repo: Path) -> None:
    command = {
        "filesystem": lambda: npm_server("server-filesystem", str(tmp_path)),
        "git": lambda: git_server(git_repo),
        "time": time_server,
        "everything": everything,
    }[server_id]()
    async with connect(command) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
    entries = load_catalog().servers[server_id]
    assert set(entries) == set(listed), f"{server_id}: catalog and tools/list differ"
    for name, tool in listed.items():
        entry = entries[name]
        keys = _schema_keys(tool.input_schema)
        assert set(entry.arguments) == keys, f"{server_id}.{name}: argument names differ from the real tool"
        for paths in entry.fields.values():
            for p in paths:
                top = p.split(".")[1].removesuffix("[*]")
                assert top in keys, f"{server_id}.{name}: {p} is not an argument of the real tool ({sorted(keys)})"
        hints = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
        if "destructiveHint" in hints and entry.destructive is not None and server_id != "everything":
            assert entry.destructive == hints["destructiveHint"], f"{server_id}.{name}"
        if hints.get("readOnlyHint"):
            assert entry.read_only, f"{server_id}.{name} is read-only on the real server"


def test_probe_tool_drafts_a_skeleton_from_a_real_server() -> None:
    """tools/catalog_probe.py is how entries are drafted: it must still speak to real servers."""
    import subprocess
    import sys

    import yaml

    out = subprocess.run(
        [
            sys.executable,
            str(cat.SERVERS_DIR.parents[3] / "tools" / "catalog_probe.py"),
            "--id",
            "time",
            "--source",
            "mcp-server-time@test",
            "--",
            *time_server(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    draft = yaml.safe_load(out)
    assert draft["id"] == "time" and draft["verified"] == "tools/list"
    assert set(draft["tools"]) == {"get_current_time", "convert_time"}
    assert draft["tools"]["get_current_time"]["read_only"] is True
    assert draft["tools"]["convert_time"]["arguments"] == ["source_timezone", "time", "target_timezone"]


def test_two_shipped_files_may_not_claim_the_same_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signoff.policy.catalog_build as build

    for sid in ("one", "two"):
        _write(
            tmp_path / f"{sid}.yaml",
            f'id: {sid}\ntitle: t\nsource: "x@1"\nverified: source\nmatch: {{packages: ["@acme/Shared_Server"]}}\ntools: {{}}\n',
        )
    _write(tmp_path / "two.yaml", (tmp_path / "two.yaml").read_text().replace("@acme/Shared_Server", "@acme/shared-server"))
    monkeypatch.setattr(build, "SERVERS_DIR", tmp_path)
    with pytest.raises(CatalogError, match=r"two\.yaml: match: package '@acme/shared-server' is also claimed by one\.yaml"):
        build.build_merged()
