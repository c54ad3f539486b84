"""The diff a held file write shows: read only where the server could write, never blocking,
never through a final symlink, never a credentials file, bounded; a failure only drops the diff."""

from __future__ import annotations

import os
import threading

import pytest

from signoff.approvals import filediff


@pytest.fixture()
def root(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("hello\nworld\nthird\n")
    filediff.know_server("fs", ["npx", "-y", "@modelcontextprotocol/server-filesystem", str(allowed)], str(tmp_path))
    yield allowed
    filediff._PLACES.pop("fs", None)


def test_write_shows_a_diff_against_the_current_file(root) -> None:
    shown = filediff.preview("fs", str(root / "notes.txt"), content="hello\nplanet\nthird\n")
    assert shown["kind"] == "diff" and not shown["new_file"]
    assert shown["text"].splitlines() == ["@@ -1,3 +1,3 @@", " hello", "-world", "+planet", " third"]
    assert (shown["added"], shown["removed"], shown["note"]) == (1, 1, "")


def test_new_file_is_all_added(root) -> None:
    shown = filediff.preview("fs", str(root / "new.txt"), content="a\nb\n")
    assert shown["new_file"] and shown["text"].splitlines() == ["@@ -0,0 +1,2 @@", "+a", "+b"]


def test_relative_path_resolves_against_the_servers_directory(tmp_path, root) -> None:
    shown = filediff.preview("fs", "allowed/notes.txt", content="hello\n")
    assert "-world" in shown["text"]


def test_edit_file_edits_become_a_diff(root) -> None:
    shown = filediff.preview("fs", str(root / "notes.txt"), edits=[{"oldText": "world", "newText": "there"}])
    assert "-world" in shown["text"] and "+there" in shown["text"] and " hello" in shown["text"]
    missing = filediff.preview("fs", str(root / "notes.txt"), edits=[{"oldText": "nowhere", "newText": "x"}])
    assert "-nowhere" in missing["text"] and "not in the current file" in missing["note"]


def test_outside_the_servers_directories_is_not_read(tmp_path, root) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("SECRET-CONTENT\n")
    shown = filediff.preview("fs", str(secret), content="x\n")
    assert shown["text"] == "" and "outside the directories" in shown["note"]
    # `..` and a symlinked directory lead outside too: the real path decides
    assert "outside" in filediff.preview("fs", str(root / ".." / "outside.txt"), content="x")["note"]
    (root / "link").symlink_to(tmp_path)
    shown = filediff.preview("fs", str(root / "link" / "outside.txt"), content="x")
    assert "SECRET" not in shown["text"] and "outside" in shown["note"]


def test_a_symlink_is_judged_by_its_target(tmp_path) -> None:
    filediff.know_server("shell", ["desktop-commander"], str(tmp_path))
    target = tmp_path / "target.txt"
    target.write_text("TARGET\n")
    (tmp_path / "link.txt").symlink_to(target)
    shown = filediff.preview("shell", str(tmp_path / "link.txt"), content="x\n")
    # realpath resolves it to the target, which is read as itself (no roots: the server may write it)
    assert "-TARGET" in shown["text"]


def test_fifo_device_and_directory_never_block(tmp_path, root) -> None:
    fifo = root / "pipe"
    os.mkfifo(fifo)
    done = threading.Event()
    result = {}

    def run() -> None:
        result["fifo"] = filediff.preview("fs", str(fifo), content="x\n")
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"
    assert result["fifo"]["text"] == "" and "not a regular file" in result["fifo"]["note"]
    assert "not a regular file" in filediff.preview("fs", str(root), content="x")["note"]
    filediff.know_server("dev", ["server"], "/")
    assert "not a regular file" in filediff.preview("dev", "/dev/zero", content="x")["note"]


def test_credentials_large_and_binary_files_are_not_read(root) -> None:
    (root / ".env").write_text("API_KEY=sk-live-123\n")
    shown = filediff.preview("fs", str(root / ".env"), content="x\n")
    assert "sk-live" not in shown["text"] and "credentials" in shown["note"]
    (root / "big.txt").write_bytes(b"a\n" * (filediff.MAX_BYTES // 2 + 1))
    assert "larger than" in filediff.preview("fs", str(root / "big.txt"), content="x")["note"]
    (root / "bin").write_bytes(b"\x00\x01\x02")
    assert "binary" in filediff.preview("fs", str(root / "bin"), content="x")["note"]


def test_long_diffs_are_cut_and_say_so(root) -> None:
    shown = filediff.preview("fs", str(root / "long.txt"), content="".join(f"line {i}\n" for i in range(500)))
    assert len(shown["text"].splitlines()) == filediff.MAX_LINES
    assert shown["note"].startswith("diff cut: ") and shown["added"] == 500


@pytest.mark.parametrize("path", [None, 5, "", "a\0b", ["x"]])
def test_hostile_paths_give_a_note_not_an_error(root, path) -> None:
    shown = filediff.preview("fs", path, content="x")
    assert shown["text"] == "" and shown["note"]


def test_huge_new_content_is_not_compared(root) -> None:
    shown = filediff.preview("fs", str(root / "notes.txt"), content="x\n" * (filediff.MAX_COMPARED + 1))
    assert shown["text"] == "" and "too large to compare" in shown["note"]


def test_no_diff_for_a_server_not_started_here(tmp_path) -> None:
    """An HTTP upstream's files are on its own machine: a local file with the same path says nothing."""
    (tmp_path / "README.md").write_text("local\n")
    assert filediff.preview("remote-http", str(tmp_path / "README.md"), content="x\n") is None


def test_no_diff_for_a_file_in_a_remote_repository(tmp_path, monkeypatch) -> None:
    from signoff.approvals import present
    from signoff.model import ToolCall
    from signoff.policy.engine import Policy, PolicyContext

    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("local readme\n")
    filediff.know_server("github", ["npx", "@modelcontextprotocol/server-github"], str(tmp_path))
    call = ToolCall(
        "github",
        "create_or_update_file",
        {"owner": "acme", "repo": "site", "path": "README.md", "content": "new\n", "message": "m", "branch": "main"},
    )
    policy = Policy.from_text(
        "defaults:\n  decision: ask\nhitl_policies: []\n", context=PolicyContext(servers={"github": "github"})
    )
    shown = present.prepare(call, policy.evaluate(call), policy)
    assert "local readme" not in shown["presentation"] and '"kind":"diff"' not in shown["presentation"]
    filediff._PLACES.pop("github", None)
