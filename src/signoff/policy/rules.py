"""Compiled policy rules: the per-tool part (cached) and the per-call part (arguments, CEL).

Split from engine.py so that the decision logic stays apart from the matching mechanics; the
file format is schema.py. Every "no" carries a reason, which `signoff policy explain` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signoff.durations import format_duration
from signoff.errors import PolicyError
from signoff.model import ToolCall, Verdict
from signoff.policy import match as pm
from signoff.policy.facts import Facts, PolicyView, phrase
from signoff.policy.schema import PolicyFile, Rule
from signoff.policy.understand import urls

IDENTITY_NAMES = ("agent", "machine", "owner")
"""Who made the call, as signoff set it (model.Identity): never read from the arguments."""
BUILTIN_NAMES = {
    "args",
    "fields",
    "tool",
    "server",
    "session",
    "annotations",
    "recipient_is_external",
    "url_is_external",
    "amount",
    "currency",
    "recipients",
    "hosts",
    "actions",
    "tables",
    "destructive",
    "read_only",
    *IDENTITY_NAMES,
}
ANY_ACTION = {"*", "all", "any"}
"""`action: "*"`: any action at all, including a tool nothing recognises (but not a pure read)."""
SEED_CONDITIONS = {
    "is_external": "recipient_is_external",
    "external_recipient": "recipient_is_external",
    "recipient_external": "recipient_is_external",
    "external": "recipient_is_external || url_is_external",
    "is_destructive": "destructive",
    "url_external": "url_is_external",
}
"""Plausible spellings of the built-in predicates in seed-style policies."""
MAX_PREDICATE_DEPTH = 8
CEL_ERRORS = (RuntimeError, TypeError, ValueError, LookupError, ArithmeticError, RecursionError)
"""What `cel` raises at evaluation: undefined names (RuntimeError), a missing key or index
(KeyError/IndexError), no such overload (TypeError), unconvertible values (ValueError), integer
overflow and division by zero (ArithmeticError). Each one holds the call: fail closed."""


def _compile_cel(text: str, *, source: str, line: int | None, field: str) -> Any:
    from signoff.policy import cel  # loaded with the first policy that has a condition

    try:
        program = cel.compile(text)
        names = tuple(program.variables())
        direct = text.strip() if text.strip() in ("recipient_is_external", "url_is_external", "destructive") else None
        return Condition(program, names, direct)
    except ValueError as exc:
        detail = str(exc).splitlines()
        first = next((d for d in detail if "ERROR" in d or "error" in d), detail[0] if detail else "syntax error")
        raise PolicyError(f"invalid CEL expression {text!r}: {first.strip()}", path=source, line=line, field=field) from None


@dataclass(frozen=True)
class Condition:
    """A compiled CEL program and the names it reads (asked once, not per call)."""

    program: Any
    names: tuple[str, ...]
    direct: str | None = None
    """A condition that is just a built-in predicate (`recipient_is_external`): answered without CEL."""


def compile_predicates(spec: PolicyFile, source: str, locator: Any) -> dict[str, Any]:
    programs = {}
    for name, text in spec.predicates.items():
        line = locator.line_of(("predicates", name)) if locator else None
        if name in BUILTIN_NAMES:
            raise PolicyError(
                f"{name!r} is a built-in name; rename the predicate", path=source, line=line, field=f"predicates.{name}"
            )
        programs[name] = _compile_cel(text, source=source, line=line, field=f"predicates.{name}")
    return programs


def compile_rule(index: int, rule: Rule, policy: PolicyView, source: str, locator: Any) -> CompiledRule:
    spec = policy.spec

    def where(key: str) -> int | None:
        return locator.line_of(("hitl_policies", index, key)) if locator else None

    from signoff.policy.understand.recognize import VOCABULARY

    field_prefix = f"hitl_policies[{index}]"
    for name in rule.actions:
        if name not in spec.actions and name not in VOCABULARY and name not in ANY_ACTION:
            raise PolicyError(
                f"action {name!r} has no `actions:` entry and no built-in meaning; map it to tools under "
                f"`actions: {{{name}: {{tools: [...]}}}}` (built-in: {', '.join(VOCABULARY)}, or * for any)",
                path=source,
                line=where("action"),
                field=f"{field_prefix}.action",
            )
    action_defs = {name: spec.actions[name] for name in rule.actions if name in spec.actions}
    action_def = next(iter(action_defs.values()), None)
    builtin = next(
        (pm.BUILTIN_ACTIONS[a] for a in rule.actions if a in pm.BUILTIN_ACTIONS and pm.BUILTIN_ACTIONS[a].irreversible),
        pm.BuiltinAction(True) if set(rule.actions) & ANY_ACTION else None,
    )
    what = _irreversible(rule, action_def, builtin)
    if what and (rule.on_timeout or spec.defaults.on_timeout) == "allow":
        line = where("on_timeout") if rule.on_timeout else locator.line_of(("defaults", "on_timeout")) if locator else None
        raise PolicyError(
            f"on_timeout: allow is refused for {what} (a timeout must not do what nobody approved); use on_timeout: deny",
            path=source,
            line=line,
            field=f"{field_prefix}.on_timeout" if rule.on_timeout else "defaults.on_timeout",
        )
    program = None
    if rule.condition:
        text = _seed_condition(rule.condition.strip())
        program = policy.predicates.get(text) or _compile_cel(
            text, source=source, line=where("condition"), field=f"{field_prefix}.condition"
        )
    label = f"{field_prefix}"
    detail = rule.name or (", ".join(rule.actions) if rule.actions else None) or rule.tool or "annotations"
    return CompiledRule(index, f"{label} ({detail})", rule, policy, action_defs, program)


def _seed_condition(text: str) -> str:
    """`amount > $100`, `amount > 1,000`, `is_external` → CEL signoff evaluates."""
    import re

    text = SEED_CONDITIONS.get(text, text)
    text = re.sub(r"(?<![\w'\"])\$\s?(?=\d)", "", text)
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def _irreversible(rule: Rule, action_def: Any, builtin: pm.BuiltinAction | None) -> str | None:
    """What makes this rule's calls irreversible, or None: the action, or a destructiveHint it asks for."""
    declared = action_def.irreversible if action_def is not None else None
    if declared or (declared is None and builtin is not None and builtin.irreversible):
        return f"the irreversible action {', '.join(rule.actions)}"
    if rule.annotations and rule.annotations.get("destructiveHint") is True:
        return "tools annotated destructiveHint: true"
    return None


@dataclass
class CompiledRule:
    index: int
    label: str
    spec: Rule
    policy: PolicyView
    action_defs: dict[str, Any]
    program: Any

    def __post_init__(self) -> None:
        self.verdict = Verdict(self.spec.decision)
        self.actions: tuple[str, ...] = self.spec.actions  # the rule's action names, computed once
        self.any_action = bool(set(self.actions) & ANY_ACTION)
        self.builtin_actions = frozenset(a for a in self.spec.actions if a not in self.action_defs and a not in ANY_ACTION)
        self.by_tools = {a: d for a, d in self.action_defs.items() if d.tools}
        self.action_fields = next((d for d in self.action_defs.values()), None)

    @property
    def action_def(self) -> Any:
        return self.action_fields

    # ------------------------------------------------------------------ per tool (cached by the policy)

    def applies_to_tool(self, call: ToolCall, profile: Any = None) -> str | None:
        """None when this rule can apply to the tool; else why not."""
        spec = self.spec
        if spec.tool and not pm.glob_match(spec.tool, call.server, call.tool):
            return f"tool {call.qualified} does not match {spec.tool!r}"
        if spec.actions:
            why_not = self._action_mismatch(call, profile if profile is not None else self.policy.profile(call))
            if why_not:
                return why_not
        if spec.annotations:
            mismatch = pm.annotations_match(spec.annotations, call.annotations)
            if mismatch:
                return f"annotations: {mismatch}"
        return None

    def _action_mismatch(self, call: ToolCall, profile: Any) -> str | None:
        if any(any(pm.glob_match(g, call.server, call.tool) for g in d.tools) for d in self.by_tools.values()):
            return None
        if self.any_action and not (profile.reads and profile.catalogued and not profile.possible):
            return None
        possible = profile.possible
        if self.builtin_actions & possible or (set(self.action_defs) - set(self.by_tools)) & possible:
            return None
        wanted = ", ".join(self.spec.actions)
        if self.by_tools and not (self.builtin_actions | (set(self.action_defs) - set(self.by_tools))):
            return (
                f"{call.qualified} is not one of action {wanted}'s tools {[g for d in self.by_tools.values() for g in d.tools]}"
            )
        known = f"{profile.source}: {', '.join(sorted(profile.actions)) or 'reads only'}"
        return f"{call.qualified} does not look like action {wanted} ({known})"

    def tool_reason(self, call: ToolCall, facts: Facts | None = None) -> str:
        spec = self.spec
        if spec.actions:
            if any(any(pm.glob_match(g, call.server, call.tool) for g in d.tools) for d in self.by_tools.values()):
                return f"{call.qualified} is one of action {', '.join(spec.actions)}'s tools"
            if facts is not None:
                hit = self._hit(facts)
                return f"{call.qualified} performs {', '.join(sorted(hit)) or 'an action'} ({facts.profile.why or facts.profile.source})"
            return f"{call.qualified} may perform {', '.join(spec.actions)}"
        if spec.tool:
            return f"tool {call.qualified} matches {spec.tool!r}"
        return f"annotations {spec.annotations}"

    # ------------------------------------------------------------------ per call

    def _hit(self, facts: Facts) -> set[str]:
        """The rule's actions this call performs."""
        if self.any_action:
            return set(facts.external_actions())
        actions = facts.actions()
        wanted = self.builtin_actions | (set(self.action_defs) - set(self.by_tools))
        return set(actions & wanted)

    def fields(self, call: ToolCall) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for action_def in self.action_defs.values():
            for name, path in action_def.fields.items():
                value: Any = {"args": call.arguments}
                for part in path.split("."):
                    if not isinstance(value, Mapping) or part not in value:
                        break
                    value = value[part]
                else:
                    out.setdefault(name, value)
        return out

    def matches(self, call: ToolCall, facts: Facts) -> tuple[bool, str, Verdict]:
        """(matched, why or why not, verdict). Assumes `applies_to_tool` said yes."""
        spec = self.spec
        verdict = self.verdict
        reasons: list[str] = []  # the tool part of the reason is added by the caller, for the winner only
        if self.actions and not (
            self.by_tools and any(any(pm.glob_match(g, call.server, call.tool) for g in d.tools) for d in self.by_tools.values())
        ):
            hit = self._hit(facts)
            if not hit:
                found = ", ".join(sorted(facts.u.actions())) or "only reads"
                return False, f"this call does not perform {', '.join(self.actions)} (recognised: {found})", verdict
        fields = self.fields(call)
        if spec.scope in ("external", "internal"):
            found_any, external = self._external(facts, fields)
            if spec.scope == "external" and not external:
                return False, "scope external: every recipient and host is internal", verdict
            if spec.scope == "internal" and (external or not found_any):
                return False, "scope internal: an address is external (or none was found)", verdict
            reasons.append(f"scope {spec.scope}" + ("" if found_any else " (no address found: treated as external)"))
        if spec.domains:
            host = _host_match(tuple(spec.domains), facts.hosts())
            if host is None:
                return False, f"no host in the arguments matches domains {spec.domains}", verdict
            reasons.append(host)
        if spec.tables:
            tables = facts.tables()
            databasey = bool(facts.actions() & {"database_write", "database_delete"})
            if not tables and not databasey:
                return False, "no SQL statement or table name in the arguments", verdict
            if not tables:  # a database write that names nothing: it may touch any table
                tables = pm.ALL_TABLES
            table = _table_match(tuple(spec.tables), tables, facts)
            if table is None:
                return False, f"the call touches {sorted(tables)}, none of {spec.tables}", verdict
            reasons.append(table)
        if self.program is not None:
            if "amount" in self.program.names and facts.amount(fields) is None:
                failed = Verdict.DENY if verdict is Verdict.DENY else Verdict.ASK
                return True, "the amount could not be read, so it counts as over every limit", failed
            try:
                value = self._evaluate(self.program, call, facts, fields, 0)
            except CEL_ERRORS as exc:
                failed = Verdict.DENY if verdict is Verdict.DENY else Verdict.ASK
                first = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
                return True, f"condition {spec.condition!r} could not be evaluated ({first}); held to fail closed", failed
            if value is not True:
                if value is False:
                    return False, f"condition {spec.condition!r} is false", verdict
                failed = Verdict.DENY if verdict is Verdict.DENY else Verdict.ASK
                return True, f"condition {spec.condition!r} gave {value!r}, not true/false; held to fail closed", failed
            reasons.append(f"condition {spec.condition!r} is true")
        if spec.rate is not None:
            over, why = self._rate(call, facts)
            if not over:
                return False, why, verdict
            reasons.append(why)
        return True, "; ".join(reasons), verdict

    def _external(self, facts: Facts, fields: dict[str, Any]) -> tuple[bool, bool]:
        """(any address found, any address outside): with none found, the call counts as external."""
        found = facts.recipients(fields)
        hosts = facts.hosts()
        internal = self.policy.internal
        external = any(r.external(internal) for r in found) or any(not urls.is_internal(h, internal) for h in hosts)
        return bool(found or hosts), external or not (found or hosts)

    def _rate(self, call: ToolCall, facts: Facts) -> tuple[bool, str]:
        from signoff.policy.understand.recognize import expand

        rate = self.spec.rate
        assert rate is not None
        counter = self.policy.context.counter
        by = rate.by or ("action" if self.spec.actions and not self.any_action else "tool")
        hit = sorted(self._hit(facts)) if by == "action" else []
        what = f"{hit[0] if hit else (self.spec.actions or ['?'])[0]} calls" if by == "action" else f"calls of {call.qualified}"
        window = format_duration(rate.per)
        if counter is None:
            return True, f"rate: no call counter here, so the limit of {rate.max} {what} per {window} counts as reached"
        if by == "action":
            wanted = set(hit) or set(self.spec.actions)
            policy = self.policy

            def same(server: str, tool: str, arguments: Mapping[str, Any]) -> bool:
                other = ToolCall(server, tool, arguments)
                if not policy.profile(other).possible & wanted:  # cached per tool: most rows stop here
                    return False
                return bool(expand(policy.understand(other).u.actions()) & wanted)
        else:

            def same(server: str, tool: str, arguments: Mapping[str, Any]) -> bool:
                return server == call.server and tool == call.tool

        try:
            count = counter.count(rate.per, same)
        except Exception as exc:  # noqa: BLE001 - the counter reads a store; fail closed on any failure
            return True, f"rate: recent calls could not be counted ({type(exc).__name__}); held"
        if count >= rate.max:
            return True, f"{count} {what} in the last {window} (limit {rate.max})"
        return False, f"rate: {count} {what} in the last {window}, under the limit of {rate.max}"

    def human_reason(self, call: ToolCall, facts: Facts, why: str) -> str:
        """One line a person understands: what the call does, from the facts that matched."""
        u = facts.u
        internal = self.policy.internal
        hit = self._hit(facts) if self.actions else set(u.actions())
        said = phrase(hit, facts, internal)
        lead = ""
        if "could not be evaluated" in why or "not true/false" in why:
            lead = next(p for p in why.split("; condition") if "could not be evaluated" in p or "not true/false" in p)
            lead = lead if lead.startswith("condition") else "condition" + lead
        elif why.startswith("the amount could not") and "could not be read" not in said:
            lead = why
        rate = next((p for p in why.split("; ") if " in the last " in p or p.startswith("rate:")), "")
        parts = [p for p in (said, lead, rate) if p]
        if not parts:
            if self.actions:
                parts.append(f"{call.qualified} performs {', '.join(sorted(hit)) or ', '.join(self.actions)}")
            elif self.spec.tool:
                parts.append(f"{call.qualified} matches the rule for {self.spec.tool}")
            else:
                parts.append(f"{call.qualified} has annotations {self.spec.annotations}")
        return "; ".join(parts)

    def _evaluate(self, condition: Condition, call: ToolCall, facts: Facts, fields: dict[str, Any], depth: int) -> Any:
        if depth > MAX_PREDICATE_DEPTH:
            raise RecursionError("predicates refer to each other in a loop")
        if condition.direct == "recipient_is_external":
            return facts.recipient_is_external(fields)
        if condition.direct == "url_is_external":
            return facts.url_is_external()
        if condition.direct == "destructive":
            return facts.u.destructive()
        context: dict[str, Any] = {}
        for name in condition.names:
            if name in IDENTITY_NAMES:  # before fields and arguments: a model cannot choose its own agent name
                context[name] = getattr(call.identity, name, "") if call.identity is not None else ""
            elif name == "args":
                context[name] = dict(call.arguments)
            elif name == "fields":
                context[name] = fields
            elif name == "tool":
                context[name] = call.tool
            elif name == "server":
                context[name] = call.server
            elif name == "session":
                context[name] = call.session
            elif name == "annotations":
                context[name] = dict(call.annotations)
            elif name == "recipient_is_external":
                context[name] = facts.recipient_is_external(fields)
            elif name == "url_is_external":
                context[name] = facts.url_is_external()
            elif name in self.policy.predicates:
                context[name] = self._evaluate(self.policy.predicates[name], call, facts, fields, depth + 1)
            elif name in fields and name != "amount":
                context[name] = fields[name]
            elif name == "amount":
                amount = facts.amount(fields)
                context[name] = float(amount.value) if amount is not None else call.arguments.get("amount")
            elif name == "currency":
                amount = facts.amount(fields)
                context[name] = (
                    amount.currency
                    if amount is not None and amount.currency
                    else fields.get("currency", call.arguments.get("currency", ""))
                )
            elif name == "recipients":
                context[name] = [r.address or r.text for r in facts.recipients(fields)]
            elif name == "hosts":
                context[name] = sorted(facts.hosts())
            elif name == "actions":
                context[name] = sorted(facts.actions())
            elif name == "tables":
                context[name] = sorted(facts.tables())
            elif name == "destructive":
                context[name] = facts.u.destructive()
            elif name == "read_only":
                context[name] = not facts.u.external_actions()
            elif name in call.arguments:
                context[name] = call.arguments[name]
        return condition.program.execute(context)


def _host_match(patterns: tuple[str, ...], hosts: frozenset[str]) -> str | None:
    """A host matching one of the globs; an unparseable host matches every list."""
    import fnmatch

    if urls.UNPARSEABLE in hosts:
        return "a URL host could not be read: it counts as matching every domain"
    for host in sorted(hosts):
        for pattern in patterns:
            if fnmatch.fnmatchcase(
                host, urls.normalize_domain(pattern) if "*" not in pattern and "?" not in pattern else pattern.lower()
            ):
                return f"host {host} matches {pattern}"
    return None


def _table_match(patterns: tuple[str, ...], tables: frozenset[str], facts: Facts) -> str | None:
    import fnmatch

    if "*" in tables:
        why = facts.sql().why
        return f"{why or 'the call names no table'}: counts as touching every table"
    for table in sorted(tables):
        for pattern in patterns:
            if fnmatch.fnmatchcase(table, pattern.lower()):
                return f"touches table {table}"
    return None
