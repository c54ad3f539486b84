"""Move signoff's flat modules into subpackages (issue #14) and rewrite every reference.

    python tools/restructure.py                      # git mv + __init__.py + rewrite all tracked text files
    python tools/restructure.py --rewrite-only F...  # only rewrite references in the given files
    python tools/restructure.py --dry-run            # print what would move / change

The table below is the single source of truth (docs: /work/wt/_notes/LAYOUT.md). Re-running is
safe: files already at their new path are skipped and rewritten references are left alone.
Logger names (`logging.getLogger("signoff.proxy")`, `caplog(..., logger="signoff.policy")`) are kept: they are an output format, not imports.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "signoff"

# old dotted name under signoff -> new dotted name under signoff (modules, then whole directories)
MODULES = {
    # relay/: one client session <-> upstreams; frames
    "jsonrpc": "relay.jsonrpc",
    "shapes": "relay.shapes",
    "proxy": "relay.proxy",
    "aggregate": "relay.aggregate",
    "eras": "relay.eras",
    "failures": "relay.failures",
    "rounds": "relay.rounds",
    "upstream": "relay.upstream",
    "share": "relay.share",
    "client_timeouts": "relay.client_timeouts",
    # serve/: downstream transports
    "downstream": "serve.stdio",
    "http_server": "serve.http",
    "http_wire": "serve.http_wire",
    "http_guard": "serve.http_guard",
    "http_sessions": "serve.http_sessions",
    "http_streams": "serve.http_streams",
    # policy/: rules, matching, understanding arguments
    "policy": "policy.engine",
    "policy_rules": "policy.rules",
    "policy_match": "policy.match",
    "policy_rate": "policy.rate",
    "policy_facts": "policy.facts",
    "cel_engine": "policy.cel",
    "catalog": "policy.catalog",
    "catalog_build": "policy.catalog_build",
    "reload": "policy.reload",
    "replay": "policy.replay",
    "risk": "policy.risk",
    # approvals/: held calls, store, audit, broker, the approval gate, channels
    "store": "approvals.store",
    "audit": "approvals.audit",
    "broker": "approvals.broker",
    "approval": "approvals.gate",
    "liveness": "approvals.liveness",
    "notify": "approvals.notify",
    "present": "approvals.present",
    "filediff": "approvals.filediff",
    "approvers.elicit": "approvals.elicit",
    # approvers/: human-facing terminals (approvers.tty stays)
    "watch": "approvers.watch",
    # wrap/
    "wrap": "wrap.apply",
    "wrap_clients": "wrap.clients",
    "wrap_text": "wrap.text",
    # cli/
    "cli": "cli.main",
    "cli_policy": "cli.policy",
    "cli_queue": "cli.queue",
    "cli_ui": "cli.ui",
    "cli_wrap": "cli.wrap",
}
DIRECTORIES = {"presets": "policy.presets", "servers": "policy.servers", "understand": "policy.understand"}
TABLE = {**MODULES, **DIRECTORIES}
NEW_PACKAGES = ["relay", "serve", "policy", "approvals", "approvers", "wrap", "cli"]
# old modules whose name is now a package: `signoff.policy.rules` is new, `signoff.policy.Policy` is old
CHILDREN = {pkg: {new.split(".", 1)[1].split(".")[0] for new in TABLE.values() if new.startswith(pkg + ".")}
            for pkg in NEW_PACKAGES}
# names that were attributes of the old module *and* are submodules of the new package: read as old
AMBIGUOUS = {"wrap": {"apply"}, "cli": {"main"}}

_KEYS = "|".join(re.escape(k) for k in sorted(TABLE, key=len, reverse=True))
DOTTED = re.compile(rf"(?<![\w.])signoff\.({_KEYS})(?![\w-])(\.\w+)?")
FROM_IMPORT = re.compile(r"^(?P<indent>[ \t]*)from signoff(?P<pkg>(?:\.\w+)*) import (?P<names>[^()#\n]+?)"
                         r"(?P<comment>[ \t]*#[^\n]*)?$", re.M)
FILE_MODULE = re.compile(r"(?<![\w.])((?:src/)?signoff/)(" + "|".join(re.escape(k.replace(".", "/"))
                         for k in sorted(MODULES, key=len, reverse=True)) + r")\.py\b")
FILE_DIR = re.compile(r"(?<![\w.])((?:src/)?signoff/)(presets|servers|understand)(?![\w.-])")
PATH_PARTS = re.compile(r'"signoff" / "(presets|servers|understand)"')
PACKAGE_DATA = re.compile(r'"(presets|servers)/')


def _new(key: str, rest: str | None) -> str | None:
    """The rewritten `signoff.KEY(.rest)`, or None when it is already in the new layout."""
    if key in CHILDREN and rest and rest[1:] in CHILDREN[key]:
        return None
    return f"signoff.{TABLE[key]}{rest or ''}"


def _rewrite_from(match: re.Match[str]) -> str:
    indent, pkg, comment = match["indent"], match["pkg"].lstrip("."), match["comment"] or ""
    kept, moved = [], []
    for item in (part.strip() for part in match["names"].split(",")):
        if not item:
            continue
        name, _, alias = (w.strip() for w in item.partition(" as "))
        key = f"{pkg}.{name}" if pkg else name
        if key not in TABLE or (pkg in CHILDREN and name in CHILDREN[pkg] and name not in AMBIGUOUS.get(pkg, set())):
            kept.append(item)
            continue
        parent, _, leaf = TABLE[key].rpartition(".")
        alias = alias or name
        if leaf in AMBIGUOUS.get(parent, set()):  # `from signoff.wrap import apply` would read as the old function
            moved.append(f"{indent}import signoff.{parent}.{leaf} as {alias}")
        else:
            moved.append(f"{indent}from signoff.{parent} import {leaf}{'' if alias == leaf else ' as ' + alias}")
    if not moved:
        return match[0]
    lines = ([f"{indent}from signoff{'.' + pkg if pkg else ''} import {', '.join(kept)}"] if kept else []) + moved
    lines[0] += comment
    return "\n".join(lines)


def rewrite(text: str, *, pyproject: bool = False) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        if "getLogger(" in line or "logger=" in line:
            out.append(line)
            continue
        out.extend(_rewrite_line(sub, pyproject) for sub in FROM_IMPORT.sub(_rewrite_from, line).splitlines(keepends=True))
    return "".join(out)


def _new_style(line: str) -> bool:
    """`from signoff.policy import rules, engine`: already imports submodules of the new package."""
    match = FROM_IMPORT.match(line.rstrip("\n"))
    if not match or match["pkg"].lstrip(".") not in CHILDREN:
        return False
    pkg = match["pkg"].lstrip(".")
    names = [item.strip().partition(" as ")[0].strip() for item in match["names"].split(",") if item.strip()]
    return all(n in CHILDREN[pkg] and n not in AMBIGUOUS.get(pkg, set()) for n in names)


def _rewrite_line(line: str, pyproject: bool = False) -> str:
    if not _new_style(line):
        line = DOTTED.sub(lambda m: _new(m[1], m[2]) or m[0], line)
        line = FILE_MODULE.sub(lambda m: m[1] + TABLE[m[2].replace("/", ".")].replace(".", "/") + ".py", line)
        line = FILE_DIR.sub(lambda m: m[1] + "policy/" + m[2], line)
        line = PATH_PARTS.sub(r'"signoff" / "policy" / "\1"', line)
    if pyproject:
        line = PACKAGE_DATA.sub(r'"policy/\1/', line)
    return line


def rewrite_file(path: Path, dry_run: bool) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        return False
    new = rewrite(text, pyproject=path.name == "pyproject.toml")
    if new == text:
        return False
    if dry_run:
        print(f"would rewrite {path}")
    else:
        path.write_text(new, encoding="utf-8")
    return True


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def move(dry_run: bool) -> None:
    for pkg in NEW_PACKAGES:
        init = PKG / pkg / "__init__.py"
        if not init.exists():
            print(f"create {init.relative_to(ROOT)} (empty: stdio start-up must never import the SDK)")
            if not dry_run:
                init.parent.mkdir(parents=True, exist_ok=True)
                init.write_text("")
                git("add", str(init))
    for old, new in TABLE.items():
        suffix = "" if old in DIRECTORIES else ".py"
        src = PKG / (old.replace(".", "/") + suffix)
        dst = PKG / (new.replace(".", "/") + suffix)
        if not src.exists() or dst.exists():
            continue
        print(f"git mv {src.relative_to(ROOT)} {dst.relative_to(ROOT)}")
        if not dry_run:
            dst.parent.mkdir(parents=True, exist_ok=True)
            git("mv", str(src), str(dst))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewrite-only", nargs="+", metavar="FILE", help="only rewrite references in these files")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.rewrite_only:
        files = [Path(f).resolve() for f in args.rewrite_only]
    else:
        move(args.dry_run)
        files = [ROOT / f for f in git("ls-files", "-z").split("\0") if f]
    me = Path(__file__).resolve()
    changed = [f for f in files if f != me and f.is_file() and rewrite_file(f, args.dry_run)]
    print(f"{len(changed)} file(s) {'would be ' if args.dry_run else ''}rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
