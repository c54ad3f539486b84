"""The three ways model text is made safe, chosen by name, and the one shortening and duration helpers."""

from __future__ import annotations

import pytest

from signoff.cli.exits import EXIT_ALREADY, EXIT_GONE, EXIT_STORE, EXIT_UNKNOWN, EXIT_USAGE, exits
from signoff.durations import format_duration, parse_duration
from signoff.errors import AlreadyDecidedError, CallGoneError, PolicyError, StoreError, UnknownCallError, UpstreamStartError
from signoff.termsafe import clean, fold, for_page, one_line, shorten

HOSTILE = "pay\x1b]52;c;ZXZpbA==\x07 eve\u202e\n\tnow"


def test_each_reader_gets_its_own_safety() -> None:
    assert clean(HOSTILE) == "pay\\x1b]52;c;ZXZpbA==\\x07 eve\\u202e\\n\\tnow"  # terminal: visible escapes
    assert one_line(HOSTILE) == "pay ]52;c;ZXZpbA== eve now"  # notification: blanked, one line
    assert for_page(HOSTILE, 200) == "pay\x1b]52;c;ZXZpbA==\x07 eve\u202e now"  # page: kept for app.js to show


def test_every_cut_says_so_the_same_way() -> None:
    assert shorten("abcdef", 6) == "abcdef" and shorten("abcdefg", 6) == "abcde…"
    assert one_line("x" * 500, 10) == "x" * 9 + "…" and for_page("a  b" * 100, 10) == "a ba ba b…"
    assert fold({"a": "y" * 500}, 100) == {"a": "y" * 100 + "… (+400 more characters)"}


def test_durations_read_and_written_once() -> None:
    assert [parse_duration(v) for v in ("500ms", "30s", "5m", "1h", 2)] == [0.5, 30, 300, 3600, 2]
    for bad in ("0s", "soon", True, -1, float("nan"), float("inf"), 10**400, 1e300, "99999999h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert [format_duration(s) for s in (0.25, 59, 65, 3700, 90000)] == ["0.25s", "59s", "1m5s", "1h1m40s", "1d1h"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UnknownCallError("no held call h-1"), EXIT_UNKNOWN),
        (CallGoneError("gone"), EXIT_GONE),
        (AlreadyDecidedError("won"), EXIT_ALREADY),
        (StoreError("locked"), EXIT_STORE),
        (PolicyError("bad", path="p.yaml", line=3), EXIT_USAGE),
        (UpstreamStartError("no such command"), EXIT_USAGE),
    ],
)
def test_one_exit_code_table(error: Exception, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped, exits():
        raise error
    assert stopped.value.code == code
    assert capsys.readouterr().err.startswith("signoff: ")
