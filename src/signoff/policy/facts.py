"""What the policy read from one call, and how it says so to a person.

`Facts` wraps the call's `Understanding` for the rules (each fact computed at most once, only if
a rule asks), lists the facts a held call shows (recipients, amounts, commands, SQL, hosts...),
and `phrase` turns the recognised actions into the one-line reason: "sends email to
eve@evil.example (external)", "charges 2,500.00 USD", "rm -rf build/ deletes files". Everything
shown comes from the model, so it is made one clean line first (`one_line`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from signoff.model import Fact, ToolCall, canonical_json
from signoff.policy.schema import PolicyFile
from signoff.policy.understand import money, recipients, urls
from signoff.policy.understand.recognize import Understanding, expand
from signoff.termsafe import one_line


class PolicyView(Protocol):
    """What facts and compiled rules read from the compiled policy (`engine.Policy`), so that
    neither imports the engine that builds them."""

    spec: PolicyFile
    internal: tuple[str, ...]
    predicates: dict[str, Any]
    context: Any
    """engine.PolicyContext: its `counter` answers `rate:` rules."""

    def profile(self, call: ToolCall, key: Any = None) -> Any: ...
    def understand(self, call: ToolCall) -> Facts: ...


class Facts:
    """What rules ask about one call, each computed at most once and only if asked."""

    def __init__(self, call: ToolCall, policy: PolicyView, key: Any = None):
        self.call = call
        self.policy = policy
        self.profile = policy.profile(call, key)
        self.u = Understanding(self.profile, call.server, call.tool, call.arguments, call.input_schema)
        self._expanded: frozenset[str] | None = None
        self._labels: list[tuple[str, bool]] | None = None

    def actions(self) -> frozenset[str]:
        """The recognised actions with what they imply (a DELETE is also a database write)."""
        cached = self._expanded
        if cached is None:
            cached = self._expanded = expand(self.u.actions())
        return cached

    def external_actions(self) -> frozenset[str]:
        """Actions that act on the world (an HTTP GET does not), with what they imply."""
        return expand(self.u.external_actions())

    def action_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.u.actions()))

    def hosts(self) -> frozenset[str]:
        return self.u.hosts()

    def url_arguments(self) -> frozenset[str]:
        return self.u.url_arguments()

    def recipients(self, fields: Mapping[str, Any] | None = None) -> list[Any]:
        if fields and "recipient" in fields:
            return recipients.collect(fields["recipient"])
        return self.u.recipients()

    def labelled_recipients(self) -> list[tuple[str, bool]]:
        """(label, external) per recipient, computed once (the reason and the facts both show them)."""
        if self._labels is None:
            internal = self.policy.internal
            labels = []
            for r in self.recipients():
                external = r.external(internal)
                labels.append((one_line(r.label(internal, external), 200), external))
            self._labels = labels
        return self._labels

    def recipient_is_external(self, fields: Mapping[str, Any] | None = None) -> bool:
        """Any recipient outside `internal_domains`. With none at all, an email counts as external;
        a chat message with no address (a channel post) stays inside the workspace."""
        if not fields or "recipient" not in fields:
            labels = self.labelled_recipients()
            actions = self.u.actions()
            chat = "send_message" in actions and "send_email" not in actions
            if not labels:
                return not chat
            if chat:  # a channel id is inside the workspace; phone numbers and addresses are judged as such
                return any(
                    external and not recipients.is_channel(r) for r, (_, external) in zip(self.recipients(), labels, strict=False)
                )
            return any(external for _, external in labels)
        return recipients.any_external(self.recipients(fields), self.policy.internal)

    def url_is_external(self) -> bool:
        hosts = self.hosts()
        return not hosts or any(not urls.is_internal(h, self.policy.internal) for h in hosts)

    def sql(self) -> Any:
        return self.u.sql()

    def tables(self) -> frozenset[str]:
        return self.u.tables()

    def amount(self, fields: Mapping[str, Any] | None = None) -> Any:
        if fields and "amount" in fields:
            return money.parse(
                fields["amount"], currency=fields.get("currency") if isinstance(fields.get("currency"), str) else None
            )
        return self.u.amount()

    def facts(self) -> tuple[Fact, ...]:
        """What was read from the arguments, for the person deciding (at most a dozen lines)."""
        from signoff.policy.understand import urls

        u = self.u
        internal = self.policy.internal
        actions = u.actions()
        fields = self.profile.fields
        out: list[Fact] = []
        if actions & {"send_email", "send_message"} or "recipient" in fields:
            for label, external in self.labelled_recipients()[:6]:
                out.append(Fact("recipient", "recipient", label, external))
            for value in u.role("subject")[:1] if "send_email" in actions else ():
                out.append(Fact("subject", "subject", _short(value)))
        if actions & {"payment", "purchase", "refund"} or "amount" in fields:
            amount = u.amount()
            if amount is not None:
                out.append(Fact("amount", "amount", str(amount), True))
            else:
                out.append(Fact("amount", "amount", "unreadable (counts as over every limit)", True))
        commands = u.commands()
        for value in u.role("command")[:2] if commands else ():
            out.append(Fact("command", "command", _short(value), True))
        for note in u.notes[:3]:
            out.append(Fact("content", "effect", one_line(note, 200), True))
        if actions & {"database_write", "database_delete"} or "sql" in fields or commands:
            touch = u.sql()
            if touch.statements:
                out.append(Fact("sql", "sql", one_line(touch.why) or ("writes" if touch.writes else "reads only"), touch.writes))
            tables = u.tables()
            if tables:
                out.append(
                    Fact(
                        "table",
                        "tables",
                        one_line(", ".join(sorted(tables)), 200),
                        touch.writes or bool(actions & {"database_write"}),
                    )
                )
        if "api_call" in actions or "url" in fields or "host" in fields:
            for host in sorted(u.hosts())[:4]:
                external = not urls.is_internal(host, internal)
                out.append(Fact("host", "host", one_line(f"{host} ({'external' if external else 'internal'})", 200), external))
        if "sensitive_read" in actions:
            for path in u.sensitive_paths()[:2]:
                out.append(Fact("path", "path", one_line(f"{path} (credentials)", 200), True))
        if self.profile.catalogued:
            for role in ("repository", "branch"):
                for value in u.role(role)[:1] if role in fields else ():
                    out.append(Fact(role, role, _short(value)))
        return tuple(out[:12])


def _short(value: Any, limit: int = 160) -> str:
    return one_line(value if isinstance(value, str) else canonical_json(value), limit)


def phrase(actions: set[str], facts: Facts, internal: tuple[str, ...]) -> str:
    """ "sends email to eve@evil.example (external)", "charges 2,500.00 USD", "rm -rf build/ deletes files"."""
    u = facts.u
    if actions & {"send_email", "send_message"}:
        people = facts.labelled_recipients()
        verb = "sends email" if "send_email" in actions else "sends a message"
        if people:
            shown = ", ".join(label for label, _ in people[:3]) + (f" and {len(people) - 3} more" if len(people) > 3 else "")
            return f"{verb} to {shown}"
        return f"{verb} (no recipient could be read: counts as external)"
    if actions & {"payment", "purchase", "refund"}:
        amount = u.amount()
        own = u.actions()
        verb = "refunds" if "refund" in own else "buys for" if "purchase" in own and "payment" not in own else "charges"
        if amount is not None:
            return f"{verb} {amount}"
        return f"{verb} an amount that could not be read"
    if u.notes:
        return "; ".join(u.notes[:2])
    if actions & {"api_call"}:
        hosts = sorted(u.hosts())
        return f"calls {', '.join(hosts[:3])}" if hosts else "calls an API"
    if actions & {"database_write", "database_delete"}:
        tables = sorted(u.tables())
        verb = "deletes from" if "database_delete" in actions else "writes to"
        return f"{verb} {', '.join(tables[:4]) if tables else 'the database'}"
    if actions & {"file_delete"}:
        paths = [p for p in u.role("path") if isinstance(p, str)]
        return f"deletes {', '.join(paths[:2])}" if paths else "deletes files"
    if actions & {"file_write"}:
        paths = [p for p in u.role("path") if isinstance(p, str)]
        return f"writes {', '.join(paths[:2])}" if paths else "writes files"
    names = {
        "deploy": "changes infrastructure",
        "access_change": "changes who has access",
        "sensitive_read": "reads secrets or credentials",
        "shell": "runs a command",
        "unknown": "a tool signoff does not recognise (it may change things)",
    }
    return "; ".join(names[a] for a in sorted(actions) if a in names)
