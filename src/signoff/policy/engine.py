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
from typing import Any

from pydantic_core import ValidationError

from signoff.errors import ConfigError, PolicyError
from signoff.model import ONE_APPROVER, ApprovalRequirements, Decision, ToolCall, Verdict, canonical_json
from signoff.policy.facts import Facts
from signoff.policy.rules import compile_predicates, compile_rule
from signoff.policy.schema import PolicyFile
from signoff.termsafe import one_line

PRESETS = ("conservative", "balanced", "permissive")
NO_POLICY = "none"
"""`--policy none`: the explicit pass-through (every call allowed and audited)."""


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
        self.spec = spec
        self.source = source
        self.context = context or PolicyContext()
        self.internal = tuple(spec.internal_domains)
        self.hash = hashlib.sha256(canonical_json(spec.model_dump()).encode()).hexdigest()
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
        asking: list[Any] = []  # every matched rule that holds the call: their requirements combine
        for rule in self.candidates(call, key):
            matched, why, verdict = rule.matches(call, facts)
            if matched and verdict is Verdict.ASK:
                asking.append(rule)
            if matched and (best_verdict is None or verdict.strength > best_verdict.strength):
                best, best_verdict, best_reason = rule, verdict, why
                if verdict is Verdict.DENY:
                    break  # nothing beats deny; the first deny wins
        defaults = self.spec.defaults
        actions = facts.action_names()
        if best is None or best_verdict is None:
            verdict = Verdict(defaults.decision)
            facts_out = () if verdict is Verdict.ALLOW else facts.facts()
            return Decision(
                verdict,
                f"no rule matched; the default is {defaults.decision}",
                None,
                defaults.timeout,
                actions=actions,
                facts=facts_out,
            )
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
            combine([best, *(r for r in asking if r is not best)]) if best_verdict is Verdict.ASK else ONE_APPROVER,
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
            "approvals": {  # team rules: who may approve
                "rules": sum(1 for r in spec.hitl_policies if not r.requirements().default),
                "roles": sorted({role for r in spec.hitl_policies for role in r.approvers or ()}),
                "max_quorum": max((r.quorum for r in spec.hitl_policies), default=1),
                "not_self": sum(1 for r in spec.hitl_policies if r.not_self),
            },
        }


def combine(rules: list[Any]) -> ApprovalRequirements:
    """The strictest of the matched `ask` rules' requirements (the deciding rule first): the
    highest quorum, not_self if any says so, and every rule's approvers list must be met (a
    person needs one role from each), so a narrow rule is never loosened by a broad one."""
    quorum, not_self = 1, False
    groups: list[tuple[str, ...]] = []
    for rule in rules:
        found = rule.spec.requirements()
        quorum, not_self = max(quorum, found.quorum), not_self or found.not_self
        groups.extend(g for g in found.approvers if g not in groups)
    return ApprovalRequirements(quorum, tuple(groups), not_self)


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
            from signoff.policy.catalog_load import load_catalog
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
