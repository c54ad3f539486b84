"""The policy file's former pydantic models, kept verbatim as the oracle for
test_policy_oracle.py: src/signoff/policy/schema.py must read every document exactly as these do.

Copied from schema.py before it moved to a pydantic_core schema (so that loading a policy does not
import pydantic, issue #13). Do not edit these to make a test pass: a difference is a policy the
proxy would read differently from what its author wrote.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from signoff.durations import parse_duration
from signoff.model import ApprovalRequirements
from signoff.policy import match as pm
from signoff.policy.understand import urls

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
            if name in ("agent", "machine", "owner"):
                raise ValueError(f"field {name!r} is who made the call, set by signoff; name the argument differently")
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


MAX_QUORUM = 10
_ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def _check_role(role: str) -> str:
    if not _ROLE.match(role):
        raise ValueError(f"role {role!r}: use lower-case letters, digits, '_' and '-' (such as finance)")
    return role


Role = Annotated[str, AfterValidator(_check_role)]


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
    approvers: list[Role] | None = None
    """Roles whose members may decide this rule's held calls (none given: the `approver` role)."""
    quorum: int = Field(default=1, ge=1, le=MAX_QUORUM)
    """How many different people must approve; one deny from an eligible person denies."""
    not_self: bool = False
    """The agent's owner may not approve its calls."""

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("approvers", mode="before")
    @classmethod
    def _roles(cls, value: Any) -> Any:
        value = _listify(value)
        if isinstance(value, list) and not value:
            raise ValueError("an empty approvers list lets nobody approve; name roles or remove the key")
        return value

    @field_validator("quorum", "not_self", mode="before")
    @classmethod
    def _no_coercion(cls, value: Any, info: Any) -> Any:
        """`quorum: "2"`, `quorum: 1.5` or `not_self: "yes"` are mistakes, not values to guess at."""
        if info.field_name == "quorum" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"quorum must be a whole number of people such as 2 (got {value!r})")
        if info.field_name == "not_self" and not isinstance(value, bool):
            raise ValueError(f"not_self must be true or false (got {value!r})")
        return value

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

    @model_validator(mode="after")
    def _holds_for_approvers(self) -> Rule:
        if self.decision != "ask" and (self.approvers or self.quorum != 1 or self.not_self):
            raise ValueError(
                f"approvers, quorum and not_self only apply to held calls; this rule's decision is "
                f"{self.decision} (remove them, or use decision: ask)"
            )
        return self

    def requirements(self) -> ApprovalRequirements:
        groups = (tuple(dict.fromkeys(self.approvers)),) if self.approvers else ()
        return ApprovalRequirements(self.quorum, groups, self.not_self)


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
