"""The policy file format: what a policy YAML may say, validated on load.

Plain dataclasses checked by one `pydantic_core` validator rather than pydantic models: the proxy
loads a policy at start-up, and pydantic's model machinery cost ~8 MB and ~80 ms there (issue
#13). The core schema below is the one pydantic built for the former models (same lax coercion,
error types, messages and locations); tests/test_policy_oracle.py checks the two agree.

`engine.Policy` compiles a validated `PolicyFile` (rules.py compiles each `Rule`); facts.py and
rules.py read these types without importing the engine. The format is documented in
`shared/policy-format.md`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import core_schema as cs

from signoff.durations import parse_duration
from signoff.model import ApprovalRequirements
from signoff.policy import match as pm
from signoff.policy.understand import urls

CHANNELS = Literal["elicit", "web", "cli", "tty"]
Duration = float
Glob = str
"""A `*`/`?` pattern, checked where it is written (so errors name the list item)."""
Role = str


class _Validated:
    """`model_validate` / `model_dump` as the callers knew them from pydantic."""

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """Validate `data` (the parsed YAML); raises `pydantic_core.ValidationError`."""
        validator = _VALIDATORS.get(cls) or _VALIDATORS.setdefault(cls, SchemaValidator(_schemas()[cls]))
        return validator.validate_python(data)

    def model_dump(self) -> dict[str, Any]:
        """Every field, nested types as dicts (the policy hash is taken over this)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass
class ActionDef(_Validated):
    """Maps an abstract action onto real tools, and names argument fields for conditions."""

    tools: list[Glob] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    irreversible: bool | None = None
    description: str | None = None


@dataclass
class Defaults(_Validated):
    decision: Literal["allow", "ask", "deny"] = "allow"
    timeout: Duration = 300.0
    on_timeout: Literal["deny", "allow"] = "deny"
    client_timeouts: dict[str, Duration | None] = field(default_factory=dict)
    """How long a client (by its `clientInfo.name`) waits for a call; adds to client_timeouts.py's table."""


@dataclass
class RateLimit(_Validated):
    """`rate: {max: 5, per: 1h}`: the rule holds a call once `max` such calls ran within `per`."""

    max: int
    per: Duration
    by: Literal["tool", "action"] | None = None
    """Count calls of the same server.tool, or of the rule's action on any tool (default: the
    action when the rule names one, else the tool)."""


MAX_QUORUM = 10
SCOPES = {"all": "all", "any": "all", "always": "all", "external": "external", "internal": "internal"}


@dataclass
class Rule(_Validated):
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
    approvers: list[Role] | None = None
    """Roles whose members may decide this rule's held calls (none given: the `approver` role)."""
    quorum: int = 1
    """How many different people must approve; one deny from an eligible person denies."""
    not_self: bool = False
    """The agent's owner may not approve its calls."""

    @property
    def actions(self) -> tuple[str, ...]:
        if self.action is None:
            return ()
        return (self.action,) if isinstance(self.action, str) else tuple(self.action)

    def requirements(self) -> ApprovalRequirements:
        groups = (tuple(dict.fromkeys(self.approvers)),) if self.approvers else ()
        return ApprovalRequirements(self.quorum, groups, self.not_self)


@dataclass
class PolicyFile(_Validated):
    version: Literal[1] = 1
    catalog: bool | list[str] = True
    """`off` (false) ignores signoff's catalog of real servers; a list adds catalog files of your own."""
    internal_domains: list[str] = field(default_factory=list)
    defaults: Defaults = field(default_factory=Defaults)
    actions: dict[str, ActionDef] = field(default_factory=dict)
    predicates: dict[str, str] = field(default_factory=dict)
    hitl_policies: list[Rule] = field(default_factory=list)


# ---------------------------------------------------------------- checks (raise ValueError)


def _check_glob(pattern: str) -> str:
    if not pattern.strip():
        raise ValueError("an empty pattern matches nothing; remove it or write *")
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"bad glob {pattern!r}: unbalanced [ ]; use * and ? only, or escape with [[]")
    return pattern


_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def _check_role(role: str) -> str:
    if not _ROLE.match(role):
        raise ValueError(f"role {role!r}: use lower-case letters, digits, '_' and '-' (such as finance)")
    return role


def _listify(value: Any) -> Any:
    """The seed may write one value where a list is expected (`domains: "*.prod.com"`)."""
    return [value] if isinstance(value, str) else value


def _field_paths(fields: dict[str, str]) -> dict[str, str]:
    for name, path in fields.items():
        if name in ("agent", "machine", "owner"):
            raise ValueError(f"field {name!r} is who made the call, set by signoff; name the argument differently")
        if not path.startswith("args.") or not all(path.split(".")):
            raise ValueError(f"field {name!r}: write a path into the arguments such as args.to (got {path!r})")
    return fields


def _client_durations(value: Any) -> Any:
    if not isinstance(value, dict):
        return value  # the dict schema says what is wrong
    return {name: None if limit in (None, "none") else parse_duration(limit) for name, limit in value.items()}


def _rate_short_form(value: Any) -> Any:
    if isinstance(value, str):  # "5/1h", "5 per 1h"
        count, sep, window = value.replace(" per ", "/").partition("/")
        if not sep or not count.strip().isdigit():
            raise ValueError(f"write rate as {{max: 5, per: 1h}} or '5/1h' (got {value!r})")
        return {"max": int(count), "per": window.strip()}
    return value


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("per must be a positive duration such as 1m or 1h")
    return seconds


def _optional_duration(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _roles(value: Any) -> Any:
    value = _listify(value)
    if isinstance(value, list) and not value:
        raise ValueError("an empty approvers list lets nobody approve; name roles or remove the key")
    return value


def _whole_quorum(value: Any) -> Any:
    """`quorum: "2"` or `quorum: 1.5` is a mistake, not a value to guess at."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"quorum must be a whole number of people such as 2 (got {value!r})")
    return value


def _strict_not_self(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"not_self must be true or false (got {value!r})")
    return value


def _scope(value: Any) -> Any:
    return SCOPES.get(value.strip().lower(), value) if isinstance(value, str) else value


def _actions(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, list) and not value:
        raise ValueError("an empty action list matches nothing; name actions or remove the key")
    return value


def _condition(value: Any) -> Any:
    if isinstance(value, bool):  # `condition: true` in YAML
        return "true" if value else "false"
    return value


def _hints(hints: dict[str, bool] | None) -> dict[str, bool] | None:
    for key in hints or {}:
        if key not in pm.ANNOTATION_DEFAULTS:
            raise ValueError(f"unknown tool annotation {key!r}; use {', '.join(pm.ANNOTATION_DEFAULTS)}")
    return hints


def _targets_something(rule: Rule) -> Rule:
    if not (rule.action or rule.tool or rule.annotations):
        raise ValueError('a rule needs `action`, `tool` or `annotations` (use tool: "*" for every tool)')
    return rule


def _holds_for_approvers(rule: Rule) -> Rule:
    if rule.decision != "ask" and (rule.approvers or rule.quorum != 1 or rule.not_self):
        raise ValueError(
            f"approvers, quorum and not_self only apply to held calls; this rule's decision is "
            f"{rule.decision} (remove them, or use decision: ask)"
        )
    return rule


def _catalog(value: Any) -> Any:
    if isinstance(value, str):
        return {"off": False, "on": True, "false": False, "true": True}.get(value.lower(), [value])
    return value


def _normalize_domains(domains: list[str]) -> list[str]:
    return [urls.normalize_domain(d) for d in domains]


# ---------------------------------------------------------------- the core schema


_VALIDATORS: dict[type, SchemaValidator] = {}
"""Built on first use, one per type validated on its own (`PolicyFile`; `Rule` for the web page)."""


def _key(schema: CoreSchema, default: Any = ..., *, factory: Any = None) -> cs.ModelField:
    """A field: required (no default), with a default value, or with a default factory."""
    if factory is not None:
        schema = cs.with_default_schema(schema, default_factory=factory)
    elif default is not ...:
        schema = cs.with_default_schema(schema, default=default)
    return cs.model_field(schema)


def _optional(schema: CoreSchema, *, before: Any = None, after: Any = None) -> cs.ModelField:
    """A field that defaults to None, with validators around the nullable schema as pydantic put them."""
    schema = cs.nullable_schema(schema)
    if before is not None:
        schema = cs.no_info_before_validator_function(before, schema)
    if after is not None:
        schema = cs.no_info_after_validator_function(after, schema)
    return _key(schema, None)


def _model(cls: type, fields: dict[str, cs.ModelField], before: Any = None, after: tuple[Any, ...] = ()) -> CoreSchema:
    """Unknown keys are errors; `before` sees the raw input, each of `after` the built instance."""
    schema: CoreSchema = cs.model_fields_schema(fields, model_name=cls.__name__)
    if before is not None:
        schema = cs.no_info_before_validator_function(before, schema)
    schema = cs.model_schema(cls, schema, config={"extra_fields_behavior": "forbid", "title": cls.__name__})
    for check in after:
        schema = cs.no_info_after_validator_function(check, schema)
    return schema


def _literal(*values: Any) -> CoreSchema:
    return cs.literal_schema(list(values))


def _schemas() -> dict[type, CoreSchema]:
    text, glob = cs.str_schema(), cs.no_info_after_validator_function(_check_glob, cs.str_schema())
    before = cs.no_info_before_validator_function
    action_def = _model(
        ActionDef,
        {
            "tools": _key(cs.list_schema(glob), factory=list),
            "fields": _key(cs.no_info_after_validator_function(_field_paths, cs.dict_schema(text, text)), factory=dict),
            "irreversible": _optional(cs.bool_schema()),
            "description": _optional(text),
        },
    )
    defaults = _model(
        Defaults,
        {
            "decision": _key(_literal("allow", "ask", "deny"), "allow"),
            "timeout": _key(before(parse_duration, cs.float_schema()), 300.0),
            "on_timeout": _key(_literal("deny", "allow"), "deny"),
            "client_timeouts": _key(
                before(_client_durations, cs.dict_schema(text, cs.nullable_schema(cs.float_schema()))), factory=dict
            ),
        },
    )
    rate = _model(
        RateLimit,
        {
            "max": _key(cs.int_schema(ge=0)),
            "per": _key(before(_positive_duration, cs.float_schema())),
            "by": _optional(_literal("tool", "action")),
        },
        before=_rate_short_form,
    )
    rule = _rule_schema(text, glob, rate)
    policy = _model(
        PolicyFile,
        {
            "version": _key(_literal(1), 1),
            "catalog": _key(before(_catalog, cs.union_schema([cs.bool_schema(), cs.list_schema(text)])), True),
            "internal_domains": _key(
                cs.no_info_after_validator_function(_normalize_domains, before(_listify, cs.list_schema(text))), factory=list
            ),
            "defaults": _key(defaults, factory=Defaults),
            "actions": _key(cs.dict_schema(text, action_def), factory=dict),
            "predicates": _key(cs.dict_schema(text, text), factory=dict),
            "hitl_policies": _key(cs.list_schema(rule), factory=list),
        },
    )
    return {ActionDef: action_def, Defaults: defaults, RateLimit: rate, Rule: rule, PolicyFile: policy}


def _rule_schema(text: CoreSchema, glob: CoreSchema, rate: CoreSchema) -> CoreSchema:
    globs = cs.list_schema(glob)
    fields = {
        "name": _optional(text),
        "action": _optional(cs.union_schema([text, cs.list_schema(text)]), before=_actions),
        "tool": _optional(glob),
        "scope": _optional(_literal("all", "external", "internal"), before=_scope),
        "condition": _optional(text, before=_condition),
        "domains": _optional(globs, before=_listify),
        "tables": _optional(globs, before=_listify),
        "rate": _optional(rate),
        "annotations": _optional(cs.dict_schema(text, cs.bool_schema()), after=_hints),
        "decision": _key(_literal("ask", "allow", "deny"), "ask"),
        "reason": _optional(text),
        "timeout": _optional(cs.float_schema(), before=_optional_duration),
        "on_timeout": _optional(_literal("deny", "allow")),
        "hold": _optional(_literal("wait", "retry")),
        "channels": _optional(cs.list_schema(_literal("elicit", "web", "cli", "tty"))),
        "description": _optional(text),
        "approvers": _optional(cs.list_schema(cs.no_info_after_validator_function(_check_role, text)), before=_roles),
        "quorum": _key(cs.no_info_before_validator_function(_whole_quorum, cs.int_schema(ge=1, le=MAX_QUORUM)), 1),
        "not_self": _key(cs.no_info_before_validator_function(_strict_not_self, cs.bool_schema()), False),
    }
    return _model(Rule, fields, after=(_targets_something, _holds_for_approvers))
