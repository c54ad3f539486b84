"""The Policies page: the policy the running proxies use, and adding and removing rules from the
web page, keeping the file's comments and layout.

Edits are made to the text (a new rule is appended to `hitl_policies`, a removed rule's lines
are cut), the result is validated as a whole policy before anything is written, and the file is
replaced atomically; every running proxy picks the change up on its next call.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic_core import ValidationError

from signoff import yamlsrc
from signoff.approvals.broker import pid_alive
from signoff.errors import PolicyError
from signoff.policy.engine import Policy
from signoff.policy.schema import Rule


def rules(text: str, source: str) -> list[dict[str, Any]]:
    """Each rule with its index, line, a one-line summary and the rule as YAML (lists as YAML lists)."""
    data, locator = yamlsrc.load_yaml(text, source=source, error=PolicyError)
    out = []
    for index, rule in enumerate((data or {}).get("hitl_policies") or []):
        summary = ", ".join(f"{k}: {v}" for k, v in rule.items()) if isinstance(rule, dict) else str(rule)
        block = yaml.safe_dump(rule, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")
        out.append({"index": index, "line": locator.line_of(("hitl_policies", index)), "summary": summary, "yaml": block})
    return out


_CEL = re.compile(
    r"(?P<prefix>.*?)invalid CEL expression '(?P<expr>.*?)': .*?<input>:\d+:(?P<col>\d+): Syntax error: (?P<what>.*)", re.S
)


def plain_error(message: str) -> str:
    """A policy error in plain words: CEL parser jargon becomes what is wrong and where."""
    match = _CEL.search(message)
    if not match:
        if "undeclared reference" in message:
            name = re.search(r"undeclared reference to '([^']+)'", message)
            return (
                f"the condition uses an unknown name{f' ({name.group(1)!r})' if name else ''}: conditions can use "
                "args (the call's arguments, e.g. args.path), tool, server and annotations"
            )
        return message
    expr, col, what = match.group("expr"), int(match.group("col")), match.group("what").strip()
    where = f"in the condition {expr!r} at character {col}"
    if "input '<EOF>'" in what:
        plain = f"the condition {expr!r} ends too early: something is missing at the end (a value after an operator?)"
    elif found := re.search(r"token recognition error at: '(.*?)'", what):
        token = found.group(1).strip()
        hint = " (to compare, use ==)" if token == "=" else ""
        plain = f"{token!r} is not understood {where}{hint}"
    elif found := re.search(r"(?:mismatched|extraneous) input '(.*?)'", what):
        plain = f"{found.group(1)!r} is not expected {where}"
    elif found := re.search(r"no viable alternative at input '(.*?)'", what):
        plain = f"{found.group(1)!r} does not make sense {where}"
    else:
        plain = f"the condition {expr!r} is not valid CEL ({what.split(' expecting ')[0]})"
    return match.group("prefix") + plain + '. Conditions are CEL, e.g. args.amount > 100 && args.currency == "EUR"'


def _item_lines(text: str, source: str) -> tuple[list[str], list[int], int]:
    """(lines, 0-based start line of each rule, 0-based line after the list's last rule)."""
    data, locator = yamlsrc.load_yaml(text, source=source, error=PolicyError)
    lines = text.splitlines(keepends=True)
    items = (data or {}).get("hitl_policies") or []
    starts = [locator.line_of(("hitl_policies", i)) - 1 for i in range(len(items))]  # type: ignore[operator]
    top_lines = sorted(line - 1 for path, line in locator.lines.items() if len(path) == 1)
    head = locator.line_of(("hitl_policies",))
    after = [line for line in top_lines if head is not None and line > head - 1]
    end = after[0] if after else len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    return lines, starts, end


def add_rule(path: str, rule: dict[str, Any]) -> str:
    try:
        Rule.model_validate(rule)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = yamlsrc.field_name([p for p in first["loc"] if isinstance(p, (str, int))]) or "rule"
        raise PolicyError(f"the new rule is invalid: {field}: {first['msg']}", path=path) from None
    text = Path(path).read_text(encoding="utf-8")
    lines, starts, end = _item_lines(text, path)
    body = yaml.safe_dump([rule], sort_keys=False, allow_unicode=True, default_flow_style=False)
    if starts:
        head = lines[starts[0]]
        indent = head[: len(head) - len(head.lstrip())]
        block = "".join(indent + line if line.strip() else line for line in body.splitlines(keepends=True))
        new_text = "".join(lines[:end]) + ("" if lines[end - 1].endswith("\n") else "\n") + block + "".join(lines[end:])
    else:
        stripped = [line for line in lines if not line.startswith("hitl_policies:")]
        block = "hitl_policies:\n" + "".join("  " + line for line in body.splitlines(keepends=True))
        new_text = "".join(stripped).rstrip("\n") + ("\n" if stripped else "") + block
    return _save(path, new_text)


def remove_rule(path: str, index: int) -> str:
    text = Path(path).read_text(encoding="utf-8")
    lines, starts, end = _item_lines(text, path)
    if not 0 <= index < len(starts):
        raise PolicyError(f"there is no rule {index} (the file has {len(starts)})", path=path)
    stop = starts[index + 1] if index + 1 < len(starts) else end
    new_text = "".join(lines[: starts[index]] + lines[stop:])
    if len(starts) == 1:
        new_text = new_text.replace("hitl_policies:\n", "hitl_policies: []\n", 1)
    return _save(path, new_text)


def _save(path: str, text: str) -> str:
    """Validate the whole policy, then replace the file atomically."""
    Policy.from_text(text, source=path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".policy-", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return text


def running_policies(store: Any) -> list[dict[str, Any]]:
    """The policies the running proxies recorded (at start and on each reload), grouped; dead
    proxies on this host are left out."""
    host = socket.gethostname()
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for proxy in store.proxies():
        if proxy.get("host") == host and not pid_alive(int(proxy.get("pid") or 0)):
            continue
        key = (proxy.get("source") or "", proxy.get("hash") or "")
        group = groups.setdefault(
            key, {"source": key[0], "kind": proxy.get("kind") or "file", "hash": key[1][:12], "proxies": 0, "servers": []}
        )
        group["proxies"] += 1
        group["servers"].extend(s for s in proxy.get("servers") or [] if s not in group["servers"])
    return list(groups.values())


def page(store: Any, policy_path: str | None) -> dict[str, Any]:
    """What the Policies page shows: the editable file given to `signoff ui --policy`, or else
    (read-only) the policy the running proxies use, preset included."""
    from signoff.policy.engine import resolve_policy_source

    running = running_policies(store)
    source, editable = policy_path, bool(policy_path)
    if not source and running and running[0]["source"]:
        source = running[0]["source"]
    if not source:
        return {"path": None, "text": None, "rules": [], "running": running, "editable": False}
    try:
        text, label = resolve_policy_source(source.removeprefix("preset:"))
        current: str | None = Policy.from_text(text, source=label).hash[:12]
        problem = None
    except PolicyError as exc:
        text, label, current, problem = "", source, None, plain_error(str(exc))
    for group in running:
        group["same_as_shown"] = group["source"] in (source, label, os.path.abspath(source)) and group["hash"] == current
    return {
        "path": label,
        "text": text,
        "rules": rules(text, label) if text else [],
        "running": running,
        "editable": editable,
        "hash": current,
        "problem": problem,
    }
