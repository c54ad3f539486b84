"""A held call shown the way a person judges it: first what it DOES, then why, then everything.

Every channel (the page, `signoff watch`, `--tty`, `pending`, the client's dialog, notifications)
renders one `Presentation`: a `headline` ("Send email to eve@evil.example (external)"), ordered
`facts` (label, value, a note signoff adds such as "external", a risky flag), an optional
`preview` (an email body, a file diff, formatted SQL, a command line), the policy's `reason`, then
the full arguments (redacted, keys in a sensible order: recipient before body, path before
content).

It is built once, by the proxy when it holds the call (`build`: the policy's actions and facts,
the catalog's argument roles, the internal domains, the file diff read from disk), and stored with
the held row; `for_held` turns a stored row back into a Presentation (or, for a row without one,
builds what the arguments alone say). Values from the model are kept apart from signoff's own
words so each renderer can quote or escape them its own way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from signoff.model import Decision, Fact, ToolCall, canonical_json
from signoff.redact import redact, redact_text
from signoff.termsafe import for_page, shorten

PREVIEW_LINES = 40
"""Preview lines a terminal shows (the page shows the whole stored preview)."""
BODY_CHARS = 2000
ORDER = (
    "sender",
    "recipient",
    "subject",
    "payee",
    "amount",
    "currency",
    "method",
    "url",
    "host",
    "path",
    "command",
    "sql",
    "table",
    "collection",
    "repository",
    "branch",
)
"""Roles first, in this order; then other arguments; bodies and contents last."""
LAST = ("body", "content")
_KEYS: dict[str, frozenset[str]] = {
    "sender": frozenset({"from", "sender", "from_email", "fromemail", "reply_to"}),
    "recipient": frozenset(
        {
            "to",
            "cc",
            "bcc",
            "recipient",
            "recipients",
            "to_address",
            "to_addresses",
            "emails",
            "email_to",
            "channel",
            "channel_id",
            "chat_id",
            "phone",
            "phone_number",
            "attendees",
        }
    ),
    "subject": frozenset({"subject", "title"}),
    "payee": frozenset(
        {
            "payee",
            "customer",
            "customer_id",
            "payment_intent",
            "charge",
            "capture_id",
            "account",
            "merchant",
            "vendor",
            "beneficiary",
            "destination_account",
            "invoice",
        }
    ),
    "amount": frozenset({"amount", "total", "price", "amount_money", "unit_amount", "total_amount", "amount_cents", "cost"}),
    "currency": frozenset({"currency", "currency_code"}),
    "method": frozenset({"method", "http_method", "verb"}),
    "url": frozenset({"url", "uri", "endpoint", "href", "link", "webhook_url"}),
    "path": frozenset(
        {
            "path",
            "paths",
            "file",
            "files",
            "filename",
            "file_path",
            "filepath",
            "source",
            "destination",
            "target",
            "dir",
            "directory",
            "src",
            "dst",
            "dest",
            "old_path",
            "new_path",
        }
    ),
    "command": frozenset({"command", "cmd", "commandline", "command_line", "shell_command", "script", "bash", "sh"}),
    "sql": frozenset({"sql", "query", "statement", "statements", "stmt"}),
    "table": frozenset({"table", "tables", "table_name", "collection", "collection_name"}),
    "body": frozenset({"body", "text", "message", "html", "htmlbody", "html_body", "markdown"}),
    "content": frozenset({"content", "contents", "data", "edits", "patch", "diff", "new_string", "newtext"}),
}
_NOTE = re.compile(r"^(.*) \((external|internal|credentials|unreadable: counts as external)\)$")
_PRIMARY = (
    "refund",
    "payment",
    "purchase",
    "send_email",
    "send_message",
    "file_delete",
    "shell",
    "database_delete",
    "database_write",
    "file_write",
    "api_call",
    "deploy",
    "access_change",
    "sensitive_read",
)


@dataclass(frozen=True)
class Line:
    """One fact as shown: `value` comes from the call (untrusted), `label` and `note` are signoff's."""

    label: str
    value: str
    note: str = ""
    risky: bool = False

    @property
    def text(self) -> str:
        return f"{self.value} ({self.note})" if self.note else self.value

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value, "note": self.note, "risky": self.risky}


@dataclass(frozen=True)
class Presentation:
    headline: str
    facts: tuple[Line, ...] = ()
    preview: Mapping[str, Any] | None = None
    reason: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    actions: tuple[str, ...] = ()

    # ------------------------------------------------------------------ renderers

    def as_dict(self) -> dict[str, Any]:
        return {
            "headline": self.headline,
            "facts": [f.as_dict() for f in self.facts],
            "preview": dict(self.preview or {}) or None,
            "reason": self.reason,
            "arguments": dict(self.arguments),
            "actions": list(self.actions),
        }

    def stored(self) -> dict[str, Any]:
        """What the held row keeps (its reason and arguments are in the row already)."""
        out = self.as_dict()
        del out["reason"], out["arguments"]
        return out

    def preview_lines(self, limit: int = PREVIEW_LINES, *, compact: bool = True) -> list[str]:
        """The preview's lines for a terminal or a dialog. `compact`: a diff keeps one line of
        context around each change (the stored diff has three), so the changes come first."""
        if not self.preview:
            return []
        lines = str(self.preview.get("text") or "").splitlines()
        if compact and self.preview.get("kind") == "diff":
            lines = _compact_diff(lines)
        extra = len(lines) - limit
        lines = lines[:limit]
        if extra > 0:
            lines.append(f"… {extra} more lines")
        if self.preview.get("note"):
            lines.append(f"({self.preview['note']})")
        return lines

    def as_text(
        self, width: int = 100, *, clean: Any = None, arguments: bool = True, reason: bool = True, indent: str = ""
    ) -> str:
        """Plain lines for a terminal: headline, facts (risky ones marked `!`), preview, why, arguments.
        `clean` escapes each untrusted piece (termsafe.clean); lines are cut at `width`."""
        from signoff.termsafe import clean as _clean
        from signoff.termsafe import json_text

        esc = clean or _clean
        out = [esc(self.headline)]
        pad = max([len(f.label) for f in self.facts] + [4])
        for fact in self.facts:
            if fact.label in ("Path", "Command") and not fact.note and fact.value in self.headline:
                continue  # the headline names it whole: the diff or the next fact follows at once
            mark = "!" if fact.risky else " "
            out.append(f"{mark} {fact.label.ljust(pad)}  {esc(fact.text)}")
        for line in self.preview_lines():
            out.append(f"  │ {esc(line)}")
        if reason and self.reason:
            out.append(f"  why: {esc(self.reason)}")
        if arguments and self.arguments:
            out.append(f"  arguments: {json_text(dict(self.arguments))}")
        return "\n".join(_cut(indent + line, width) for line in out) + "\n"

    def summary(self, facts: int = 6) -> tuple[str, list[str]]:
        """(title, lines) for a notification: the headline, then the key facts and the reason."""
        lines = [("! " if f.risky else "") + f"{f.label}: {f.text}" for f in self.facts[:facts]]
        kind = (self.preview or {}).get("kind")
        if kind == "diff":
            changed = [line for line in self.preview_lines() if line[:1] in "+-"]
            lines.append(f"change: +{self.preview.get('added', 0)} −{self.preview.get('removed', 0)} lines")  # type: ignore[union-attr]
            lines.extend(changed[:6])
        elif kind in ("sql", "command"):
            lines.extend(self.preview_lines(4))
        if self.reason:
            lines.append(f"why: {self.reason}")
        return self.headline, lines


def _compact_diff(lines: list[str]) -> list[str]:
    """Changed lines with one line of context each side; `⋯` where lines are left out (no @@ headers)."""
    changed = [i for i, line in enumerate(lines) if line[:1] in "+-"]
    keep = {j for i in changed for j in (i - 1, i, i + 1) if 0 <= j < len(lines) and not lines[j].startswith("@@")}
    out: list[str] = []
    last = None
    for i in sorted(keep):
        if last is not None and i != last + 1:
            out.append("⋯")
        out.append(lines[i])
        last = i
    return out


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else shorten(line, max(11, width))


def _short(value: Any, limit: int = 200) -> str:
    """Whitespace folded, cut; control and bidi characters are kept for each channel to show as
    visible escapes (the page prints \u202e, termsafe prints it escaped), not silently dropped."""
    return for_page(value if isinstance(value, str) else canonical_json(value), limit)


# ---------------------------------------------------------------------------- reading the arguments


def _values(arguments: Mapping[str, Any], fields: Mapping[str, Sequence[str]] | None, role: str) -> list[tuple[str, Any]]:
    """(key, value) pairs of one role: the catalog's paths, else argument names that say it."""
    from signoff.policy.understand.recognize import values_at

    if fields is not None and role in fields:
        out: list[tuple[str, Any]] = []
        for path in fields[role]:
            key = path.rsplit(".", 1)[-1].replace("[*]", "")
            out.extend((key, v) for v in values_at(arguments, path) if v not in (None, "", [], {}))
        return out
    if fields and role not in ("payee", "method", "url", "body", "content", "currency"):
        return []  # a catalogued tool: its roles are known, others are not guessed
    keys = _KEYS.get(role, frozenset())
    return [(k, v) for k, v in arguments.items() if str(k).lower() in keys and v not in (None, "", [], {})]


def _flat(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    if isinstance(value, Mapping):
        for key in ("email", "address", "emailAddress", "email_address", "value", "path"):
            if isinstance(value.get(key), str):
                return [value[key]]
        return [_short(value)]
    return [] if value is None else [value if isinstance(value, str) else _short(value)]


def _split_note(text: str) -> tuple[str, str]:
    match = _NOTE.match(text)
    return (match.group(1), match.group(2)) if match else (text, "")


def _role_order(key: str, fields: Mapping[str, Sequence[str]] | None) -> tuple[int, str]:
    low = str(key).lower()
    for role_paths in (fields or {}).items():
        role, paths = role_paths
        if any(p.split(".")[1].replace("[*]", "") == key for p in paths if p.count(".") >= 1):
            if role in LAST:
                return (len(ORDER) + 2, "")
            return (ORDER.index(role) if role in ORDER else len(ORDER), "")
    for i, role in enumerate(ORDER):
        if low in _KEYS.get(role, ()):
            return (i, "")
    if any(low in _KEYS[r] for r in LAST):
        return (len(ORDER) + 2, "")
    return (len(ORDER) + 1, "")


_WITHIN = ("from", "to", "cc", "bcc", "source", "destination")


def ordered(arguments: Mapping[str, Any], fields: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The arguments with recipients, paths, commands, URLs, SQL and amounts first, bodies last
    (From, To, Cc, Bcc in that order)."""
    keys = list(arguments)

    def rank(k: str) -> tuple[int, int, int]:
        low = str(k).lower()
        return _role_order(k, fields)[0], _WITHIN.index(low) if low in _WITHIN else len(_WITHIN), keys.index(k)

    return {k: arguments[k] for k in sorted(keys, key=rank)}


# ---------------------------------------------------------------------------- building


def _primary(actions: Iterable[str], roles: Mapping[str, list[tuple[str, Any]]]) -> str:
    found = set(actions)
    if roles.get("command") and found & {"shell", "file_delete", "file_write", "api_call", "database_write", "database_delete"}:
        return "shell"
    if roles.get("sql") and found & {"database_write", "database_delete", "sensitive_read"}:
        return "sql"
    for action in _PRIMARY:
        if action in found:
            return action
    if roles.get("recipient") and roles.get("body"):
        return "send_email"
    if roles.get("path") and roles.get("content"):
        return "file_write"
    if roles.get("command"):
        return "shell"
    if roles.get("sql"):
        return "sql"
    if roles.get("url"):
        return "api_call"
    return ""


@dataclass
class _Draft:
    """What `build` assembles: one kind's function fills in lines, a headline and perhaps a preview."""

    call: ToolCall
    arguments: dict[str, Any]
    roles: dict[str, list[tuple[str, Any]]]
    given: list[Fact]
    internal: tuple[str, ...] | None
    marks: dict[str, tuple[str, bool]]
    preview: Mapping[str, Any] | None
    facts: list[Line] = field(default_factory=list)
    headline: str = ""
    used_kinds: set[str] = field(default_factory=set)

    def recipient_line(self, label: str, value: str) -> Line:
        if self.internal is not None:
            from signoff.policy.understand import recipients

            found = recipients.collect(value)
            if found:
                shown, note = _split_note(found[0].label(self.internal))
                return Line(label, shown, note, note != "internal")
        note, risky = self.marks.get(value.lower(), self.marks.get(_address(value), ("", False)))
        return Line(label, value, note, risky)

    def text_preview(self, role: str, title: str) -> None:
        """The first text value of `role` (a body, a file's content) as the preview, if none yet."""
        text = next((v for _, v in self.roles[role] if isinstance(v, str)), None)
        if text is not None and not self.preview:
            self.preview = {
                "kind": "text",
                "title": title,
                "text": text[:BODY_CHARS],
                "note": f"{len(text) - BODY_CHARS} more characters" if len(text) > BODY_CHARS else "",
            }


def _message(d: _Draft, kind: str) -> None:
    for _key, value in d.roles["sender"][:2]:
        d.facts.append(Line("From", _short(_flat(value)[0] if _flat(value) else value)))
    tos: list[Line] = []
    for key, value in d.roles["recipient"]:
        label = {"to": "To", "cc": "Cc", "bcc": "Bcc"}.get(key.lower(), key.replace("_", " ").capitalize() or "To")
        for v in _flat(value)[:8]:
            tos.append(d.recipient_line(label, _short(v, 160)))
    d.facts.extend(tos[:10])
    for _key, value in d.roles["subject"][:1]:
        d.facts.append(Line("Subject", _short(value)))
    d.text_preview("body", "Body")
    verb = "Send email" if kind == "send_email" else "Send message"
    target = f" to {tos[0].text}" if tos else ""
    more = f" and {len(tos) - 1} more" if len(tos) > 1 else ""
    d.headline = f"{verb}{target}{more}"
    d.used_kinds |= {"recipient", "subject"}


def _money(d: _Draft, kind: str) -> None:
    amount = next((f.text for f in d.given if f.kind == "amount"), None)
    if amount is None:
        values = [v for _, v in d.roles["amount"]]
        currency = next((v for _, v in d.roles["currency"] if isinstance(v, str)), "")
        amount = " ".join(filter(None, (_short(values[0]) if values else "?", currency.upper())))
    d.facts.append(Line("Amount", amount, risky=True))
    for key, value in (d.roles["payee"] + d.roles["recipient"])[:3]:
        d.facts.append(
            Line(
                "Payee" if kind != "refund" else key.replace("_", " ").capitalize(),
                _short(_flat(value)[0] if _flat(value) else value),
            )
        )
    verb = {"payment": "Pay", "refund": "Refund", "purchase": "Buy for"}[kind]
    facts = d.facts
    to = f" to {facts[1].value}" if kind == "payment" and len(facts) > 1 else (f" on {facts[1].value}" if len(facts) > 1 else "")
    d.headline = f"{verb} {amount}{to}"
    d.used_kinds |= {"amount", "recipient"}


def _delete(d: _Draft, kind: str) -> None:
    paths = [p for _, v in d.roles["path"] for p in _flat(v)]
    for p in paths[:8]:
        d.facts.append(Line("Path", _short(p), risky=True))
    if len(paths) > 8:
        d.facts.append(Line("Paths", f"{len(paths) - 8} more"))
    what = (
        paths[0]
        if len(paths) == 1
        else f"{len(paths)} paths: {', '.join(_short(p, 60) for p in paths[:3])}"
        if paths
        else d.call.tool
    )
    d.headline = f"Delete {_short(what, 120)}"
    d.used_kinds.add("path")


def _shell(d: _Draft, kind: str) -> None:
    commands = [c for _, v in d.roles["command"] for c in ([" ".join(map(str, v))] if isinstance(v, list) else [_short(v, 2000)])]
    for c in commands[:2]:
        d.facts.append(Line("Command", c, risky=True))
    d.headline = f"Run: {_short(commands[0], 100)}" if commands else f"Run a command ({d.call.tool})"
    if commands and len(commands[0]) > 100 and not d.preview:
        d.preview = {"kind": "command", "title": "Command", "text": commands[0], "note": ""}
    d.used_kinds.add("command")


def _sql(d: _Draft, kind: str) -> None:
    texts = [v for _, v in d.roles["sql"] if isinstance(v, str)]
    tables = next((f.text for f in d.given if f.kind == "table"), "")
    effect = next((f.text for f in d.given if f.kind == "content"), "")
    if tables:
        d.facts.append(Line("Tables", tables, risky=any(f.risky for f in d.given if f.kind == "table")))
    if texts and not d.preview:
        d.preview = {"kind": "sql", "title": "SQL", "text": pretty_sql(texts[0]), "note": ""}
    d.headline = f"Run SQL: {effect}" if effect else (f"Run SQL on {tables}" if tables else f"Run SQL ({d.call.tool})")
    d.used_kinds |= {"table", "sql"}


def _write(d: _Draft, kind: str) -> None:
    paths = [p for _, v in d.roles["path"] for p in _flat(v)]
    for key, value in d.roles["path"][:2]:
        label = "Path" if key.lower() in ("path", "file_path", "filepath", "file") else key.replace("_", " ").capitalize()
        d.facts.append(Line(label, _short(_flat(value)[0] if _flat(value) else value, 300), risky=True))
    verb = "Write"
    extra = ""
    preview = d.preview
    if preview and preview.get("kind") == "diff":
        if preview.get("new_file"):
            verb = "Create"
        elif any(str(k).lower() == "edits" for k in d.arguments) or "edit" in d.call.tool.lower():
            verb = "Edit"
        if preview.get("text"):
            extra = f" (+{preview.get('added', 0)} −{preview.get('removed', 0)} lines)"
    elif len(d.roles["path"]) == 2:
        verb = "Move"
    target = " → ".join(_short(p, 80) for p in paths[:2]) if verb == "Move" else (_short(paths[0], 120) if paths else d.call.tool)
    d.headline = f"{verb} {target}{extra}"
    d.text_preview("content", "Content")
    d.used_kinds.add("path")


def _api(d: _Draft, kind: str) -> None:
    if not (d.roles["url"] or d.roles["method"]):
        return
    methods = [str(v).upper() for _, v in d.roles["method"] if isinstance(v, str)]
    method = methods[0] if methods else ("GET" if re.search(r"fetch|get|navigate|read|scrape|browse", d.call.tool, re.I) else "")
    url = next((_short(v, 300) for _, v in d.roles["url"]), "")
    if method:
        d.facts.append(Line("Method", method, risky=method not in ("GET", "HEAD")))
    if url:
        host = next((f for f in d.given if f.kind == "host"), None)
        note = _split_note(host.text)[1] if host else ""
        d.facts.append(Line("URL", url, note, bool(host and host.risky)))
    d.headline = " ".join(filter(None, (method or "Call", url or d.call.tool)))
    d.used_kinds.add("host")


_BY_KIND = {
    "send_email": _message,
    "send_message": _message,
    "payment": _money,
    "refund": _money,
    "purchase": _money,
    "file_delete": _delete,
    "shell": _shell,
    "sql": _sql,
    "file_write": _write,
    "api_call": _api,
}
"""The call's primary action -> what fills in its lines, headline and preview."""


def build(
    call: ToolCall,
    decision: Decision,
    *,
    fields: Mapping[str, Sequence[str]] | None = None,
    internal: tuple[str, ...] | None = None,
    preview: Mapping[str, Any] | None = None,
) -> Presentation:
    """The presentation of one held call. `fields` are the catalog's argument paths per role (None:
    guess from argument names); `internal` the policy's internal domains (None: take the external
    marks from the decision's facts); `preview` a precomputed one (the file diff)."""
    arguments = redact(dict(call.arguments)) if isinstance(call.arguments, Mapping) else {}
    roles = {role: _values(arguments, fields, role) for role in (*ORDER, "payee", *LAST)}
    actions = tuple(decision.actions)
    kind = _primary(actions, roles)
    given = list(decision.facts)
    marks = {}
    for f in given:
        if f.kind == "recipient":
            value, note = _split_note(redact_text(f.text))
            marks[value.lower()] = (note, f.risky)
    d = _Draft(call, arguments, roles, given, internal, marks, dict(preview) if preview else None)
    if kind in _BY_KIND:
        _BY_KIND[kind](d, kind)
    if not d.headline:
        d.headline = f"Call {call.qualified}"
        for key, value in list(ordered(arguments, fields).items())[:4]:
            d.facts.append(Line(str(key), _short(value, 160)))
    _add_other_facts(d)
    preview_out = d.preview
    if preview_out and preview_out.get("text"):
        preview_out = {**preview_out, "text": redact_text(str(preview_out["text"]))}
    return Presentation(
        _short(d.headline, 200), tuple(d.facts[:14]), preview_out, decision.reason, ordered(arguments, fields), actions
    )


def _add_other_facts(d: _Draft) -> None:
    """The decision's facts not already shown by the kind's own lines."""
    seen = {f.text for f in d.facts} | {f.value for f in d.facts}
    for f in d.given:
        text = redact_text(f.text)
        if (f.kind in d.used_kinds and f.kind != "host") or text in seen:
            continue
        if f.kind == "host" and any(text.startswith(_host_of(x.value)) for x in d.facts if x.label == "URL"):
            continue
        value, note = _split_note(text)
        d.facts.append(Line(f.label.capitalize() if f.label.islower() else f.label, value, note, f.risky))
        seen.add(text)


def _address(value: str) -> str:
    match = re.search(r"<([^>]+)>", value)
    return (match.group(1) if match else value).strip().lower()


def _host_of(url: str) -> str:
    from signoff.policy.understand import urls

    return urls.host_of(url) or "\0"


def pretty_sql(text: str) -> str:
    """SQL formatted one clause a line (sqlglot), or as given when it does not parse."""
    try:
        import sqlglot

        statements = sqlglot.parse(text)
        out = ";\n".join(s.sql(pretty=True) for s in statements if s is not None)
        return out or text
    except Exception:  # noqa: BLE001 - any parser failure: show the SQL as the model wrote it
        return text


# ---------------------------------------------------------------------------- the proxy side


def prepare(call: ToolCall, decision: Decision, policy: Any = None) -> dict[str, Any]:
    """The held row's columns: the decision's actions and facts, and the stored presentation
    (with the file diff read now, on the server's machine). Never raises for a call's content."""
    from signoff.approvals import filediff

    fields = None
    internal = None
    if policy is not None:
        try:
            profile = policy.profile(call)
            fields = dict(profile.fields) if profile.catalogued else None
        except (AttributeError, TypeError):
            fields = None
        internal = tuple(getattr(policy, "internal", ()) or ()) or None
    arguments = call.arguments if isinstance(call.arguments, Mapping) else {}
    roles = {role: _values(arguments, fields, role) for role in ("path", "content")}
    diff = None
    remote = bool(fields and ({"repository", "branch", "url"} & set(fields)))  # a file in a GitHub repository, not here
    if "file_write" in decision.actions and roles["path"] and "shell" not in decision.actions and not remote:
        edits = arguments.get("edits")
        content = next((v for _, v in roles["content"] if isinstance(v, str)), None)
        old, new = arguments.get("old_string"), arguments.get("new_string")
        if isinstance(edits, list):
            diff = filediff.preview(call.server, roles["path"][0][1], edits=edits)
        elif isinstance(old, str) and isinstance(new, str):  # desktop-commander's edit_block
            count = arguments.get("expected_replacements")
            count = count if isinstance(count, int) and 1 <= count <= 100 else 1
            diff = filediff.preview(call.server, roles["path"][0][1], edits=[{"oldText": old, "newText": new}] * count)
        elif content is not None and not any(str(k).lower() in ("old_string", "mode") for k in arguments):
            diff = filediff.preview(call.server, roles["path"][0][1], content=content)
            if diff is not None and not diff.get("text") and diff.get("note"):  # not read: the new content as text
                diff = {"kind": "text", "title": "New content", "text": content[:BODY_CHARS], "note": diff["note"]}
    shown = build(call, decision, fields=fields, internal=internal, preview=diff)
    return {
        "actions": canonical_json(list(decision.actions)),
        "facts": canonical_json([{"kind": f.kind, "label": f.label, "text": f.text, "risky": f.risky} for f in decision.facts]),
        "presentation": canonical_json(shown.stored()),
    }


def for_held(held: Any) -> Presentation:
    """A stored held call as a Presentation (rows held before presentations existed: built from
    the arguments and whatever facts the row has)."""
    arguments = redact(dict(held.arguments or {}))
    stored = getattr(held, "presentation", None)
    if isinstance(stored, Mapping) and isinstance(stored.get("headline"), str):
        facts = tuple(
            Line(str(f.get("label", "")), redact_text(str(f.get("value", ""))), str(f.get("note", "")), bool(f.get("risky")))
            for f in stored.get("facts") or ()
            if isinstance(f, Mapping)
        )
        preview = stored.get("preview") if isinstance(stored.get("preview"), Mapping) else None
        if preview and preview.get("text"):
            preview = {**preview, "text": redact_text(str(preview["text"]))}
        return Presentation(
            redact_text(stored["headline"]),
            facts,
            preview,
            held.reason or "",
            ordered(arguments),
            tuple(str(a) for a in stored.get("actions") or ()),
        )
    known = tuple(
        Fact(str(f.get("kind", "")), str(f.get("label", "")), str(f.get("text", "")), bool(f.get("risky")))
        for f in getattr(held, "facts", None) or ()
        if isinstance(f, Mapping)
    )
    decision = Decision(
        verdict=_ask(), reason=held.reason or "", actions=tuple(getattr(held, "actions", None) or ()), facts=known
    )
    return build(ToolCall(held.server, held.tool, arguments), decision)


def _ask() -> Any:
    from signoff.model import Verdict

    return Verdict.ASK
