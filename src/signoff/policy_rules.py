"""Compiled policy rules: the per-tool part (cached) and the per-call part (arguments, CEL).

Split from policy.py so that the file format and the decision logic stay apart from the
matching mechanics. Every "no" carries a reason, which `signoff policy explain` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signoff import policy_match as pm
from signoff.errors import PolicyError
from signoff.model import ToolCall, Verdict

if TYPE_CHECKING:
    from signoff.policy import Facts, Policy, PolicyFile, Rule

BUILTIN_NAMES = {"args", "fields", "tool", "server", "session", "annotations", "recipient_is_external", "url_is_external"}
MAX_PREDICATE_DEPTH = 8
CEL_ERRORS = (RuntimeError, TypeError, ValueError, LookupError, ArithmeticError, RecursionError)
"""What `cel` raises at evaluation: undefined names (RuntimeError), a missing key or index
(KeyError/IndexError), no such overload (TypeError), unconvertible values (ValueError), integer
overflow and division by zero (ArithmeticError). Each one holds the call: fail closed."""


def _compile_cel(text: str, *, source: str, line: int | None, field: str) -> Any:
    from signoff import cel_engine as cel  # loaded with the first policy that has a condition

    try:
        program = cel.compile(text)
        return Condition(program, tuple(program.variables()))
    except ValueError as exc:
        detail = str(exc).splitlines()
        first = next((d for d in detail if "ERROR" in d or "error" in d), detail[0] if detail else "syntax error")
        raise PolicyError(f"invalid CEL expression {text!r}: {first.strip()}", path=source, line=line, field=field) from None


@dataclass(frozen=True)
class Condition:
    """A compiled CEL program and the names it reads (asked once, not per call)."""

    program: Any
    names: tuple[str, ...]


def compile_predicates(spec: PolicyFile, source: str, locator: Any) -> dict[str, Any]:
    programs = {}
    for name, text in spec.predicates.items():
        line = locator.line_of(("predicates", name)) if locator else None
        if name in BUILTIN_NAMES:
            raise PolicyError(f"{name!r} is a built-in name; rename the predicate", path=source, line=line, field=f"predicates.{name}")
        programs[name] = _compile_cel(text, source=source, line=line, field=f"predicates.{name}")
    return programs


def compile_rule(index: int, rule: Rule, policy: Policy, source: str, locator: Any) -> CompiledRule:
    spec = policy.spec

    def where(key: str) -> int | None:
        return locator.line_of(("hitl_policies", index, key)) if locator else None

    field_prefix = f"hitl_policies[{index}]"
    action_def = spec.actions.get(rule.action) if rule.action else None
    builtin = pm.BUILTIN_ACTIONS.get(rule.action) if rule.action else None
    if rule.action and action_def is None and builtin is None:
        raise PolicyError(
            f"action {rule.action!r} has no `actions:` entry and no built-in meaning; map it to tools under "
            f"`actions: {{{rule.action}: {{tools: [...]}}}}` (built-in: {', '.join(pm.BUILTIN_ACTIONS)})",
            path=source, line=where("action"), field=f"{field_prefix}.action",
        )
    what = _irreversible(rule, action_def, builtin)
    if what and (rule.on_timeout or spec.defaults.on_timeout) == "allow":
        line = where("on_timeout") if rule.on_timeout else locator.line_of(("defaults", "on_timeout")) if locator else None
        raise PolicyError(
            f"on_timeout: allow is refused for {what} (a timeout must not do what nobody approved); use on_timeout: deny",
            path=source, line=line, field=f"{field_prefix}.on_timeout" if rule.on_timeout else "defaults.on_timeout",
        )
    program = None
    if rule.condition:
        text = rule.condition.strip()
        program = policy.predicates.get(text) or _compile_cel(
            text, source=source, line=where("condition"), field=f"{field_prefix}.condition"
        )
    label = f"{field_prefix}"
    detail = rule.name or rule.action or rule.tool or "annotations"
    return CompiledRule(index, f"{label} ({detail})", rule, policy, action_def, program)


def _irreversible(rule: Rule, action_def: Any, builtin: pm.BuiltinAction | None) -> str | None:
    """What makes this rule's calls irreversible, or None: the action, or a destructiveHint it asks for."""
    declared = action_def.irreversible if action_def is not None else None
    if declared or (declared is None and builtin is not None and builtin.irreversible):
        return f"the irreversible action {rule.action}"
    if rule.annotations and rule.annotations.get("destructiveHint") is True:
        return "tools annotated destructiveHint: true"
    return None


@dataclass
class CompiledRule:
    index: int
    label: str
    spec: Rule
    policy: Policy
    action_def: Any
    program: Any
    url_only: dict[str, bool] | None = None
    """Per tool: does this built-in action (api_call) apply only through a URL argument? None: never."""

    def __post_init__(self) -> None:
        self.verdict = Verdict(self.spec.decision)
        builtin = pm.BUILTIN_ACTIONS.get(self.spec.action or "")
        if builtin and builtin.url_arg and not (self.action_def is not None and self.action_def.tools):
            self.url_only = {}

    def _only_by_url(self, call: ToolCall) -> bool:
        assert self.url_only is not None
        found = self.url_only.get(call.qualified)
        if found is None:
            if len(self.url_only) > 4096:
                self.url_only.clear()
            found = self.url_only[call.qualified] = self._by_url_argument(call)
        return found

    # ------------------------------------------------------------------ per tool (cached by the policy)

    def applies_to_tool(self, call: ToolCall) -> str | None:
        """None when this rule can apply to the tool; else why not."""
        spec = self.spec
        if spec.tool and not pm.glob_match(spec.tool, call.server, call.tool):
            return f"tool {call.qualified} does not match {spec.tool!r}"
        if spec.action:
            why_not = self._action_mismatch(call)
            if why_not:
                return why_not
        if spec.annotations:
            mismatch = pm.annotations_match(spec.annotations, call.annotations)
            if mismatch:
                return f"annotations: {mismatch}"
        return None

    def _action_mismatch(self, call: ToolCall) -> str | None:
        action = self.spec.action
        assert action is not None
        if self.action_def is not None and self.action_def.tools:
            if any(pm.glob_match(g, call.server, call.tool) for g in self.action_def.tools):
                return None
            return f"{call.qualified} is not one of action {action}'s tools {self.action_def.tools}"
        if pm.builtin_match(action, call.server, call.tool, call.annotations) or self._by_url_argument(call):
            return None
        return f"{call.qualified} does not look like action {action} (name or annotations)"

    def _by_url_argument(self, call: ToolCall) -> bool:
        """True when only a URL argument can make this call the rule's built-in action (checked per call)."""
        action = self.spec.action
        if not action or (self.action_def is not None and self.action_def.tools):
            return False
        builtin = pm.BUILTIN_ACTIONS.get(action)
        return bool(builtin and builtin.url_arg) and pm.builtin_match(action, call.server, call.tool, call.annotations) is None

    def tool_reason(self, call: ToolCall) -> str:
        spec = self.spec
        if spec.action:
            if self.action_def is not None and self.action_def.tools:
                return f"{call.qualified} is one of action {spec.action}'s tools"
            by_name = pm.builtin_match(spec.action, call.server, call.tool, call.annotations)
            return by_name or f"an argument is a URL, so {call.qualified} counts as action {spec.action}"
        if spec.tool:
            return f"tool {call.qualified} matches {spec.tool!r}"
        return f"annotations {spec.annotations}"

    # ------------------------------------------------------------------ per call

    def fields(self, call: ToolCall) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.action_def is None:
            return out
        for name, path in self.action_def.fields.items():
            value: Any = {"args": call.arguments}
            for part in path.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    break
                value = value[part]
            else:
                out[name] = value
        return out

    def matches(self, call: ToolCall, facts: Facts) -> tuple[bool, str, Verdict]:
        """(matched, why or why not, verdict). Assumes `applies_to_tool` said yes."""
        spec = self.spec
        verdict = self.verdict
        reasons: list[str] = []  # the tool part of the reason is added by the caller, for the winner only
        if self.url_only is not None and self._only_by_url(call) and not facts.url_arguments():
            return False, f"{call.qualified} does not look like action {spec.action} and no argument is a URL", verdict
        fields = self.fields(call)
        if spec.scope in ("external", "internal"):
            recipients = facts.recipients(fields)
            found = recipients | facts.hosts()
            external = pm.any_external(found, self.policy.internal)
            if spec.scope == "external" and not external:
                return False, "scope external: every recipient and host is internal", verdict
            if spec.scope == "internal" and (external or not found):
                return False, "scope internal: an address is external (or none was found)", verdict
            reasons.append(f"scope {spec.scope}" + ("" if found else " (no address found: treated as external)"))
        if spec.domains:
            hit = pm.host_matches(tuple(spec.domains), facts.hosts())
            if hit is None:
                return False, f"no host in the arguments matches domains {spec.domains}", verdict
            reasons.append(hit)
        if spec.tables or spec.action == "database_write":
            touch = facts.sql()
            if spec.action == "database_write" and touch.statements and not touch.writes:
                return False, "the SQL in the arguments only reads", verdict
            if spec.tables:
                if not touch.statements:
                    touch = pm.named_tables(facts.pairs())  # a `table:`/`collection:` argument (no SQL)
                if not touch.statements and spec.action != "database_write":
                    return False, "no SQL statement or table name in the arguments", verdict
                if not touch.statements:  # a database write that names nothing: it may touch any table
                    touch = pm.SqlTouch(pm.ALL_TABLES, True, 0)
                hit = pm.tables_match(tuple(spec.tables), touch)
                if hit is None:
                    return False, f"the SQL touches {sorted(touch.tables)}, none of {spec.tables}", verdict
                reasons.append(hit)
        if self.program is not None:
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
        return True, "; ".join(reasons), verdict

    def _evaluate(self, condition: Condition, call: ToolCall, facts: Facts, fields: dict[str, Any], depth: int) -> Any:
        if depth > MAX_PREDICATE_DEPTH:
            raise RecursionError("predicates refer to each other in a loop")
        context: dict[str, Any] = {}
        for name in condition.names:
            if name == "args":
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
            elif name in fields:
                context[name] = fields[name]
            elif name in call.arguments:
                context[name] = call.arguments[name]
        return condition.program.execute(context)
