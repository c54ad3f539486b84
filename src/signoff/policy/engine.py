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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signoff.policy import match as pm
from signoff.policy.facts import Facts
from signoff.termsafe import one_line
from signoff.policy.understand import urls
from signoff.config import parse_duration
from signoff.errors import ConfigError, PolicyError
from signoff.model import Decision, ToolCall, Verdict, canonical_json

PRESETS = ("conservative", "balanced", "permissive")
NO_POLICY = "none"
"""`--policy none`: the explicit pass-through (every call allowed and audited)."""
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


class RateLimit(_Strict):
    """`rate: {max: 5, per: 1h}`: the rule holds a call once `max` such calls ran within `per`."""

    max: int = Field(ge=0)
    per: Duration
    by: Literal["tool", "action"] | None = None
    """Count calls of the same server.tool, or of the rule's action on any tool (default: the
    action when the rule names one, else the tool)."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, str):  # "5/1h", "5 per 1h"
            count, sep, window = value.replace(" per ", "/").partition("/")
            if not sep or not count.strip().isdigit():
                raise ValueError(f"write rate as {{max: 5, per: 1h}} or '5/1h' (got {value!r})")
            return {"max": int(count), "per": window.strip()}
        return value

    @field_validator("per", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("per must be a positive duration such as 1m or 1h")
        return seconds


def _listify(value: Any) -> Any:
    """The seed may write one value where a list is expected (`domains: "*.prod.com"`)."""
    return [value] if isinstance(value, str) else value


SCOPES = {"all": "all", "any": "all", "always": "all", "external": "external", "internal": "internal"}


class Rule(_Strict):
    """One `hitl_policies` entry. Every key it has must hold for the rule to match."""

    name: str | None = None
    action: str | list[str] | None = None
    tool: Glob | None = None
    scope: Literal["all", "external", "internal"] | None = None
    condition: str | None = None
    domains: list[Glob] | None = None
    tables: list[Glob] | None = None
    rate: RateLimit | None = None
    annotations: dict[str, bool] | None = None
    decision: Literal["ask", "allow", "deny"] = "ask"
    reason: str | None = None
    timeout: Duration | None = None
    on_timeout: Literal["deny", "allow"] | None = None
    hold: Literal["wait", "retry"] | None = None
    """Unset: wait, or retry for a client known to give up sooner than the rule's timeout."""
    channels: list[CHANNELS] | None = None
    description: str | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("domains", "tables", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        return SCOPES.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("action", mode="before")
    @classmethod
    def _actions(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
        if isinstance(value, list) and not value:
            raise ValueError("an empty action list matches nothing; name actions or remove the key")
        return value

    @field_validator("condition", mode="before")
    @classmethod
    def _condition(cls, value: Any) -> Any:
        if isinstance(value, bool):  # `condition: true` in YAML
            return "true" if value else "false"
        return value

    @property
    def actions(self) -> tuple[str, ...]:
        if self.action is None:
            return ()
        return (self.action,) if isinstance(self.action, str) else tuple(self.action)

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
    catalog: bool | list[str] = True
    """`off` (false) ignores signoff's catalog of real servers; a list adds catalog files of your own."""
    internal_domains: list[str] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    actions: dict[str, ActionDef] = Field(default_factory=dict)
    predicates: dict[str, str] = Field(default_factory=dict)
    hitl_policies: list[Rule] = Field(default_factory=list)

    @field_validator("internal_domains", mode="before")
    @classmethod
    def _one_domain(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("internal_domains")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        return [urls.normalize_domain(d) for d in domains]

    @field_validator("catalog", mode="before")
    @classmethod
    def _catalog(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"off": False, "on": True, "false": False, "true": True}.get(value.lower(), [value])
        return value


@dataclass
class RuleResult:
    """What one rule said about a call (for `policy explain`)."""

    index: int
    label: str
    matched: bool
    why: str
    verdict: Verdict | None = None


@dataclass(frozen=True)
class PolicyContext:
    """What the engine learns from where it runs (it stays pure: no I/O of its own).

    `servers` maps each wrapped server's configured name to its catalog id (the runner knows
    the commands and URLs); `counter` counts recent calls for `rate:` rules; `catalog` is a
    loaded catalog to share between reloads (None: load it)."""

    servers: Mapping[str, str] = field(default_factory=dict)
    counter: Any = None
    catalog: Any = None


class Policy:
    """A compiled policy. Build it with `load_policy` or `Policy.from_text`."""

    def __init__(self, spec: PolicyFile, *, source: str = "<policy>", locator: Any = None, context: PolicyContext | None = None):
        from signoff.policy.rules import compile_predicates, compile_rule

        self.spec = spec
        self.source = source
        self.context = context or PolicyContext()
        self.internal = tuple(spec.internal_domains)
        self.hash = hashlib.sha256(canonical_json(spec.model_dump(mode="json")).encode()).hexdigest()
        self.catalog = _catalog_for(spec, source, self.context)
        self.predicates = compile_predicates(spec, source, locator)
        self.rules = [compile_rule(i, rule, self, source, locator) for i, rule in enumerate(spec.hitl_policies)]
        self._candidates: dict[tuple[str, str, Any], list[Any]] = {}
        self._profiles: dict[tuple[str, str, Any], Any] = {}
        self._ids: dict[str, str | None] = {}

    @classmethod
    def from_text(cls, text: str, *, source: str = "<policy>", context: PolicyContext | None = None) -> Policy:
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
        return cls(spec, source=source, locator=locator, context=context)

    # ------------------------------------------------------------------ what a tool is

    def catalog_id(self, server: str) -> str | None:
        found = self._ids.get(server, "")
        if found == "":
            found = self.context.servers.get(server)
            if found is None and self.catalog is not None:
                found = self.catalog.identify(server)
            self._ids[server] = found
        return found

    def profile(self, call: ToolCall, key: Any = None) -> Any:
        """What is known about the call's tool (catalog entry or name), cached per tool."""
        key = key or (call.server, call.tool, _hints_key(call.annotations))
        found = self._profiles.get(key)
        if found is None:
            from signoff.policy.understand import recognize

            entry = None
            server_id = self.catalog_id(call.server) if self.catalog is not None else None
            if server_id is not None:
                entry = self.catalog.lookup(server_id, call.tool)
            found = recognize.profile(call.server, call.tool, call.annotations, entry, server_id)
            if len(self._profiles) > 4096:
                self._profiles.clear()
            self._profiles[key] = found
        return found

    def understand(self, call: ToolCall) -> Facts:
        return Facts(call, self)

    # ------------------------------------------------------------------ evaluation

    def candidates(self, call: ToolCall, key: Any = None) -> list[Any]:
        """Rules whose tool/action/annotation part accepts this tool (cached per tool)."""
        key = key or (call.server, call.tool, _hints_key(call.annotations))
        found = self._candidates.get(key)
        if found is None:
            profile = self.profile(call, key)
            found = [rule for rule in self.rules if rule.applies_to_tool(call, profile) is None]
            if len(self._candidates) > 4096:
                self._candidates.clear()
            self._candidates[key] = found
        return found

    def evaluate(self, call: ToolCall) -> Decision:
        best = None
        best_verdict = None
        best_reason = ""
        key = (call.server, call.tool, _hints_key(call.annotations))
        facts = Facts(call, self, key)
        for rule in self.candidates(call, key):
            matched, why, verdict = rule.matches(call, facts)
            if matched and (best_verdict is None or verdict.strength > best_verdict.strength):
                best, best_verdict, best_reason = rule, verdict, why
                if verdict is Verdict.DENY:
                    break  # nothing beats deny; the first deny wins
        defaults = self.spec.defaults
        actions = facts.action_names()
        if best is None:
            verdict = Verdict(defaults.decision)
            facts_out = () if verdict is Verdict.ALLOW else facts.facts()
            return Decision(verdict, f"no rule matched; the default is {defaults.decision}", None, defaults.timeout,
                            actions=actions, facts=facts_out)
        spec = best.spec
        reason = spec.reason or one_line(best.human_reason(call, facts, best_reason))
        return Decision(
            best_verdict,
            reason,
            best.label,
            spec.timeout or defaults.timeout,
            spec.hold or "auto",
            tuple(spec.channels or ()),
            _on_timeout(spec.on_timeout or defaults.on_timeout, call, facts),
            actions,
            facts.facts(),
        )

    def explain(self, call: ToolCall) -> tuple[Decision, list[RuleResult]]:
        facts = Facts(call, self)
        profile = self.profile(call)
        results = []
        for rule in self.rules:
            why_not = rule.applies_to_tool(call, profile)
            if why_not is not None:
                results.append(RuleResult(rule.index, rule.label, False, why_not))
                continue
            matched, why, verdict = rule.matches(call, facts)
            if matched:
                why = "; ".join(filter(None, (rule.tool_reason(call, facts), why)))
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
            "actions": sorted({a for r in spec.hitl_policies for a in r.actions}),
            "defaults": spec.defaults.model_dump(),
            "internal_domains": spec.internal_domains,
            "catalog": "off" if self.catalog is None else f"{len(self.catalog)} servers",
        }


_CATALOGS: dict[tuple[str, ...], Any] = {}


def _catalog_for(spec: PolicyFile, source: str, context: PolicyContext) -> Any:
    """The catalog this policy uses: None with `catalog: off`; extra files are relative to the policy."""
    if spec.catalog is False:
        return None
    extra: tuple[str, ...] = ()
    if isinstance(spec.catalog, list):
        base = Path(source).parent if not source.startswith(("<", "preset:")) else Path.cwd()
        extra = tuple(str(base / p) for p in spec.catalog)
    if not extra and context.catalog is not None:
        return context.catalog
    if extra not in _CATALOGS:
        try:
            from signoff.policy.catalog import load_catalog
        except ModuleNotFoundError as exc:  # the catalog ships with signoff; without it, names only
            if exc.name != "signoff.policy.catalog":
                raise
            return None
        try:
            _CATALOGS[extra] = load_catalog(extra)
        except ConfigError as exc:
            raise PolicyError(f"catalog: {exc}", path=source, field="catalog") from None
    return _CATALOGS[extra]


def _on_timeout(configured: str, call: ToolCall, facts: Facts | None = None) -> str:
    """A destructive call (declared, or recognised) is never let through by a timeout, whatever the rule says."""
    if configured == "allow" and (
        (call.annotations.get("destructiveHint") is True and not call.annotations.get("readOnlyHint"))
        or (facts is not None and facts.u.destructive())
    ):
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
    """(text, source label) for a preset name, `none`, or a file path."""
    if name_or_path == NO_POLICY and not os.path.exists(name_or_path):
        return "version: 1\nhitl_policies: []\n", "none"
    if name_or_path in PRESETS and not os.path.exists(name_or_path):
        text = resources.files("signoff.policy.presets").joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
        return text, f"preset:{name_or_path}"
    try:
        return Path(name_or_path).read_text(encoding="utf-8"), name_or_path
    except OSError as exc:
        raise PolicyError(
            f"cannot read the policy file ({exc.strerror}); give a path or one of {', '.join(PRESETS)}", path=name_or_path
        ) from None


def load_policy(name_or_path: str, *, context: PolicyContext | None = None) -> Policy:
    """Load and compile a policy file or preset; raises PolicyError naming file:line: field."""
    text, source = resolve_policy_source(name_or_path)
    return Policy.from_text(text, source=source, context=context)
