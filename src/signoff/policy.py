"""The policy engine: a YAML file of rules → for each call, allow, ask or deny, and why.

Pure: no I/O after loading. Rules are compiled once (globs, CEL conditions); per call, the
rules that can apply to the tool are found through a per-tool cache, so rules naming other
tools cost nothing. All applicable rules are checked: `deny` beats `ask` beats `allow`, and
among equals the first rule in the file wins. An unmatched call gets `defaults.decision`.
A condition that cannot be evaluated fails closed: the rule counts as matched, as `ask` at
least. The format is `shared/policy-format.md`; `configs/` has commented examples.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signoff import policy_match as pm
from signoff.config import parse_duration
from signoff.errors import PolicyError
from signoff.model import Decision, ToolCall, Verdict, canonical_json

PRESETS = ("conservative", "balanced", "permissive")
CHANNELS = Literal["elicit", "web", "cli", "tty"]
Duration = float


def _check_glob(pattern: str) -> str:
    if not pattern.strip():
        raise ValueError("an empty pattern matches nothing; remove it or write *")
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"bad glob {pattern!r}: unbalanced [ ]; use * and ? only, or escape with [[]")
    return pattern


Glob = Annotated[str, AfterValidator(_check_glob)]
"""A `*`/`?` pattern, checked where it is written (so errors name the list item)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionDef(_Strict):
    """Maps an abstract action onto real tools, and names argument fields for conditions."""

    tools: list[Glob] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)
    irreversible: bool | None = None
    description: str | None = None

    @field_validator("fields")
    @classmethod
    def _paths(cls, fields: dict[str, str]) -> dict[str, str]:
        for name, path in fields.items():
            if not path.startswith("args.") or not all(path.split(".")):
                raise ValueError(f"field {name!r}: write a path into the arguments such as args.to (got {path!r})")
        return fields


class Defaults(_Strict):
    decision: Literal["allow", "ask", "deny"] = "allow"
    timeout: Duration = 300.0
    on_timeout: Literal["deny", "allow"] = "deny"
    client_timeouts: dict[str, Duration | None] = Field(default_factory=dict)
    """How long a client (by its `clientInfo.name`) waits for a call; adds to client_timeouts.py's table."""

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("client_timeouts", mode="before")
    @classmethod
    def _client_durations(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic says what is wrong
        return {name: None if limit in (None, "none") else parse_duration(limit) for name, limit in value.items()}


class Rule(_Strict):
    """One `hitl_policies` entry. Every key it has must hold for the rule to match."""

    name: str | None = None
    action: str | None = None
    tool: Glob | None = None
    scope: Literal["all", "external", "internal"] | None = None
    condition: str | None = None
    domains: list[Glob] | None = None
    tables: list[Glob] | None = None
    annotations: dict[str, bool] | None = None
    decision: Literal["ask", "allow", "deny"] = "ask"
    reason: str | None = None
    timeout: Duration | None = None
    on_timeout: Literal["deny", "allow"] | None = None
    hold: Literal["wait", "retry"] | None = None
    """Unset: wait, or retry for a client known to give up sooner than the rule's timeout."""
    channels: list[CHANNELS] | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("annotations")
    @classmethod
    def _hints(cls, hints: dict[str, bool] | None) -> dict[str, bool] | None:
        for key in hints or {}:
            if key not in pm.ANNOTATION_DEFAULTS:
                raise ValueError(f"unknown tool annotation {key!r}; use {', '.join(pm.ANNOTATION_DEFAULTS)}")
        return hints

    @model_validator(mode="after")
    def _targets_something(self) -> Rule:
        if not (self.action or self.tool or self.annotations):
            raise ValueError('a rule needs `action`, `tool` or `annotations` (use tool: "*" for every tool)')
        return self


class PolicyFile(_Strict):
    version: Literal[1] = 1
    internal_domains: list[str] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    actions: dict[str, ActionDef] = Field(default_factory=dict)
    predicates: dict[str, str] = Field(default_factory=dict)
    hitl_policies: list[Rule] = Field(default_factory=list)

    @field_validator("internal_domains")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        return [d.lower().strip().lstrip("*.").rstrip(".") for d in domains]


@dataclass
class RuleResult:
    """What one rule said about a call (for `policy explain`)."""

    index: int
    label: str
    matched: bool
    why: str
    verdict: Verdict | None = None


class Policy:
    """A compiled policy. Build it with `load_policy` or `Policy.from_text`."""

    def __init__(self, spec: PolicyFile, *, source: str = "<policy>", locator: Any = None):
        from signoff.policy_rules import compile_rule, compile_predicates

        self.spec = spec
        self.source = source
        self.internal = tuple(spec.internal_domains)
        self.hash = hashlib.sha256(canonical_json(spec.model_dump(mode="json")).encode()).hexdigest()
        self.predicates = compile_predicates(spec, source, locator)
        self.rules = [compile_rule(i, rule, self, source, locator) for i, rule in enumerate(spec.hitl_policies)]
        self._candidates: dict[tuple[str, str, Any], list[Any]] = {}

    @classmethod
    def from_text(cls, text: str, *, source: str = "<policy>") -> Policy:
        from signoff import yamlsrc

        data, locator = yamlsrc.load_yaml(text, source=source, error=PolicyError)
        if data is None:
            raise PolicyError("the policy file is empty; add `hitl_policies:` rules", path=source, line=1)
        if not isinstance(data, dict):
            raise PolicyError("a policy must be a mapping with `hitl_policies:`", path=source, line=1)
        try:
            spec = PolicyFile.model_validate(data)
        except ValidationError as exc:
            yamlsrc.raise_validation_error(exc, locator, source, PolicyError, PolicyFile)
        return cls(spec, source=source, locator=locator)

    # ------------------------------------------------------------------ evaluation

    def candidates(self, call: ToolCall) -> list[Any]:
        """Rules whose tool/action/annotation part accepts this tool (cached per tool)."""
        key = (call.server, call.tool, _hints_key(call.annotations))
        found = self._candidates.get(key)
        if found is None:
            found = [rule for rule in self.rules if rule.applies_to_tool(call) is None]
            if len(self._candidates) > 4096:
                self._candidates.clear()
            self._candidates[key] = found
        return found

    def evaluate(self, call: ToolCall) -> Decision:
        best = None
        best_verdict = None
        best_reason = ""
        facts = Facts(call, self)
        for rule in self.candidates(call):
            matched, why, verdict = rule.matches(call, facts)
            if matched and (best_verdict is None or verdict.strength > best_verdict.strength):
                best, best_verdict, best_reason = rule, verdict, why
                if verdict is Verdict.DENY:
                    break  # nothing beats deny; the first deny wins
        defaults = self.spec.defaults
        if best is None:
            verdict = Verdict(defaults.decision)
            return Decision(verdict, f"no rule matched; the default is {defaults.decision}", None, defaults.timeout)
        spec = best.spec
        reason = spec.reason or "; ".join(filter(None, (best.tool_reason(call), best_reason)))
        return Decision(
            best_verdict,
            reason,
            best.label,
            spec.timeout or defaults.timeout,
            spec.hold or "auto",
            tuple(spec.channels or ()),
            _on_timeout(spec.on_timeout or defaults.on_timeout, call),
        )

    def explain(self, call: ToolCall) -> tuple[Decision, list[RuleResult]]:
        facts = Facts(call, self)
        results = []
        for rule in self.rules:
            why_not = rule.applies_to_tool(call)
            if why_not is not None:
                results.append(RuleResult(rule.index, rule.label, False, why_not))
                continue
            matched, why, verdict = rule.matches(call, facts)
            if matched:
                why = "; ".join(filter(None, (rule.tool_reason(call), why)))
            results.append(RuleResult(rule.index, rule.label, matched, why, verdict if matched else None))
        return self.evaluate(call), results

    def summary(self) -> dict[str, Any]:
        spec = self.spec
        counts = {v: sum(1 for r in spec.hitl_policies if r.decision == v) for v in ("ask", "deny", "allow")}
        return {
            "source": self.source,
            "hash": self.hash[:12],
            "rules": len(spec.hitl_policies),
            "by_decision": counts,
            "actions": sorted({r.action for r in spec.hitl_policies if r.action}),
            "defaults": spec.defaults.model_dump(),
            "internal_domains": spec.internal_domains,
        }


class Facts:
    """What rules ask about one call, each computed at most once and only if asked."""

    def __init__(self, call: ToolCall, policy: Policy):
        self.call = call
        self.policy = policy
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def pairs(self) -> pm.Pairs:
        return self._once("pairs", lambda: pm.pairs(self.call.arguments))

    def hosts(self) -> set[str]:
        return self._once("hosts", lambda: pm.hosts(self.pairs()))

    def recipients(self, fields: Mapping[str, Any] | None = None) -> set[str]:
        if fields and "recipient" in fields:
            return pm.email_domains(fields["recipient"])
        return self._once("recipients", lambda: pm.email_domains(self.pairs()))

    def recipient_is_external(self, fields: Mapping[str, Any] | None = None) -> bool:
        return pm.any_external(self.recipients(fields), self.policy.internal)

    def url_arguments(self) -> set[str]:
        return self._once("url_arguments", lambda: pm.url_arguments(self.pairs()))

    def url_is_external(self) -> bool:
        return pm.any_external(self.hosts(), self.policy.internal)

    def sql(self) -> pm.SqlTouch:
        return self._once("sql", lambda: pm.sql_touch(self.pairs()))


def _on_timeout(configured: str, call: ToolCall) -> str:
    """A tool that declares itself destructive is never let through by a timeout, whatever the rule says."""
    if configured == "allow" and call.annotations.get("destructiveHint") is True and not call.annotations.get("readOnlyHint"):
        return "deny"
    return configured


def _hints_key(annotations: Mapping[str, Any]) -> Any:
    """A cheap hashable key for a tool's annotations (they are usually a few booleans)."""
    if not annotations:
        return ()
    try:
        return frozenset(annotations.items())
    except TypeError:  # a nested value: fall back to its canonical text
        return canonical_json(dict(annotations))


def resolve_policy_source(name_or_path: str) -> tuple[str, str]:
    """(text, source label) for a preset name or a file path."""
    if name_or_path in PRESETS and not os.path.exists(name_or_path):
        text = resources.files("signoff.presets").joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
        return text, f"preset:{name_or_path}"
    try:
        return Path(name_or_path).read_text(encoding="utf-8"), name_or_path
    except OSError as exc:
        raise PolicyError(
            f"cannot read the policy file ({exc.strerror}); give a path or one of {', '.join(PRESETS)}", path=name_or_path
        ) from None


def load_policy(name_or_path: str) -> Policy:
    """Load and compile a policy file or preset; raises PolicyError naming file:line: field."""
    text, source = resolve_policy_source(name_or_path)
    return Policy.from_text(text, source=source)
