"""Differential test: the policy schema (dataclasses + a pydantic_core validator) reads every
document exactly as the former pydantic models (tests/policy_oracle.py) did.

A policy the proxy reads differently from what its author wrote weakens the gate, so both must
accept or reject the same documents, build the same values (types included) and report the same
first error at the same location (yamlsrc turns that location into file:line).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import ValidationError

import policy_oracle as oracle
from signoff.model import canonical_json
from signoff.policy import schema

EXAMPLES = 1000

DURATIONS = [
    "5m", 30, "1h30m", "garbage", "0", 0, -5, "none", None, 1.5, "30s", "500ms", True, False, "", " 5m ", [], {},
    "1d", "10", 2.0, float("inf"), float("nan"), "-1s", "0.5h", 10**30,
]  # fmt: skip
TEXTS = ["x", "", "  ", 5, None, True, 1.5, ["x"], {"a": 1}]
GLOBS = ["*", "git.*", "", "  ", "a[b", "a[b]", "[[]x", 5, None, ["x"], "db.query"]
ANY = st.sampled_from([None, True, False, 0, 1, -1, 2.5, "", "x", "5", [], ["x"], {}, {"x": 1}])


def _pick(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(values), ANY)


def _with_extra(strategy: st.SearchStrategy[dict[str, Any]], *keys: str) -> st.SearchStrategy[Any]:
    """Mostly the mapping, sometimes with an unknown key, sometimes not a mapping at all."""
    extra = st.sampled_from(["bogus", "Tool", "max_", "hitl_policy", *keys])
    with_key = st.tuples(strategy, extra, ANY).map(lambda t: {**t[0], t[1]: t[2]})
    return st.one_of(strategy, strategy, strategy, with_key, ANY)


def _optional_keys(**keys: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=keys)


RATE = st.one_of(
    st.sampled_from(["5/1h", "5 per 1h", "5/", "/1h", "x/1h", "5/0", "5/garbage", " 5 / 1h", "5", "0/1m", "-1/1h", "٣/1h"]),
    _with_extra(
        _optional_keys(
            max=_pick([5, "5", 0, -1, True, 2.0, 2.5, "x"]),
            per=_pick(DURATIONS),
            by=_pick(["tool", "action", "x", "Tool"]),
        )
    ),
)
HINTS = st.dictionaries(
    st.sampled_from(["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint", "bogusHint", "title"]),
    st.sampled_from([True, False, "yes", 1, 0, None, "true", "off", 2]),
    max_size=3,
)
RULE_KEYS = {
    "name": _pick(TEXTS),
    "action": _pick(["send_email", ["send_email"], ["a", "b"], [], [5], 5, "", [""], ["x", 1], "payment"]),
    "tool": _pick(GLOBS),
    "scope": _pick(["all", "any", "Always", " external ", "internal", "INTERNAL", "nope", 5, True]),
    "condition": _pick([True, False, "args.x > 1", "", 5, "true"]),
    "domains": _pick(["*.prod.com", ["a.com", "*"], [], [""], ["a["], 5, ["x", 5]]),
    "tables": _pick(["users", ["users", "*"], [], [""], ["a]"], 5]),
    "rate": st.one_of(RATE, ANY),
    "annotations": st.one_of(HINTS, ANY),
    "decision": _pick(["ask", "allow", "deny", "Ask", "hold", 1]),
    "reason": _pick(TEXTS),
    "timeout": _pick(DURATIONS),
    "on_timeout": _pick(["deny", "allow", "Deny", 1]),
    "hold": _pick(["wait", "retry", "x"]),
    "channels": _pick([["web"], ["web", "tty"], [], ["fax"], "web", ["elicit", "cli"], [1]]),
    "description": _pick(TEXTS),
    "approvers": _pick(["finance", "Finance", ["ops", "finance"], [], ["bad role"], ["ops", "ops"], "", ["a" * 41], [5]]),
    "quorum": _pick([1, 2, 10, 11, 0, -1, "2", 1.5, 2.0, True, False, None]),
    "not_self": _pick([True, False, "yes", 1, 0, None, "true"]),
}
RULE = _with_extra(_optional_keys(**RULE_KEYS), "tools", "action_")
VALID_RULE = st.fixed_dictionaries(
    {"tool": st.sampled_from(["*", "git.*", "db.query"])},
    optional={
        "decision": st.sampled_from(["ask", "allow", "deny"]),
        "action": st.sampled_from(["send_email", ["send_email"], ["a", "b"]]),
        "scope": st.sampled_from(["any", " External", "internal"]),
        "rate": st.sampled_from(["5/1h", "5 per 1h", {"max": "3", "per": 30}]),
        "timeout": st.sampled_from(["5m", 30, "1h"]),
        "approvers": st.sampled_from(["ops", ["ops", "ops"]]),
        "quorum": st.sampled_from([1, 2]),
        "condition": st.sampled_from([True, "args.x > 1"]),
        "domains": st.sampled_from(["*.prod.com", ["a.com"]]),
        "annotations": st.sampled_from([{"readOnlyHint": "yes"}, {"destructiveHint": 1}]),
    },
)


def _mutate(rule: dict[str, Any], changes: list[tuple[str, Any]], untargeted: bool) -> dict[str, Any]:
    rule = {k: v for k, v in rule.items() if not (untargeted and k == "tool")}
    return {**rule, **dict(changes)}


KEY_VALUE = st.sampled_from([*RULE_KEYS.items(), ("bogus", ANY)]).flatmap(lambda kv: kv[1].map(lambda v: (kv[0], v)))
NEAR_VALID_RULE = st.builds(_mutate, VALID_RULE, st.lists(KEY_VALUE, min_size=1, max_size=3), st.booleans())
"""A valid rule with one to three keys changed (and maybe its tool removed): mostly one error."""
CROSS_RULE = _optional_keys(
    tool=st.sampled_from(["*", ""]),
    action=st.sampled_from(["x", ""]),
    annotations=st.sampled_from([{}, {"readOnlyHint": True}]),
    decision=st.sampled_from(["ask", "allow", "deny"]),
    approvers=st.sampled_from(["ops", ["ops"], None]),
    quorum=st.sampled_from([1, 2]),
    not_self=st.booleans(),
)
"""The checks across keys: something to match, and approvers only where a call is held."""
ACTION_DEF = _with_extra(
    _optional_keys(
        tools=_pick([["a.*"], [], "x", [""], ["a["], [5]]),
        fields=_pick([{"to": "args.to"}, {"agent": "args.x"}, {"x": "to"}, {"x": "args."}, {"x": "args..y"}, {}, {"x": 5}]),
        irreversible=_pick([True, False, "yes", 1, "off"]),
        description=_pick(TEXTS),
    )
)
CLIENT_TIMEOUTS = st.one_of(st.dictionaries(st.sampled_from(["claude-code", "x", ""]), st.sampled_from(DURATIONS)), ANY)
DEFAULTS = _with_extra(
    _optional_keys(
        decision=_pick(["allow", "ask", "deny", "hold"]),
        timeout=_pick(DURATIONS),
        on_timeout=_pick(["deny", "allow", "hold"]),
        client_timeouts=CLIENT_TIMEOUTS,
    )
)
POLICY = _with_extra(
    _optional_keys(
        version=_pick([1, "1", 2, 1.0, True]),
        catalog=_pick(["off", "on", "OFF", "true", "False", "x.yaml", ["a.yaml"], [], True, False, 0, 1, [1]]),
        internal_domains=_pick(["Example.COM", ["a.com", "B.org."], [], "", ["*.x.com"], [5], ["bücher.de"]]),
        defaults=DEFAULTS,
        actions=st.one_of(st.dictionaries(st.sampled_from(["send_email", "wire", "x"]), ACTION_DEF, max_size=2), ANY),
        predicates=_pick([{"p": "args.x > 1"}, {"p": 5}, {}, {"p": None}]),
        hitl_policies=st.one_of(st.lists(st.one_of(RULE, NEAR_VALID_RULE, VALID_RULE, CROSS_RULE), max_size=3), ANY),
    ),
    "hitl",
)
GOOD_DURATIONS = st.sampled_from(["5m", 30, "1h", 1.5, "500ms", "2", 7.0])
VALID_POLICY = _optional_keys(  # values both sides accept, many of them only after coercion
    version=st.just(1),
    catalog=st.sampled_from(["off", "on", "OFF", "true", "False", "x.yaml", ["a.yaml"], [], True, False]),
    internal_domains=st.sampled_from(["Example.COM", ["a.com", "B.org."], [], ["bücher.de"]]),
    defaults=_optional_keys(
        decision=st.sampled_from(["allow", "ask", "deny"]),
        timeout=GOOD_DURATIONS,
        on_timeout=st.sampled_from(["deny", "allow"]),
        client_timeouts=st.dictionaries(st.sampled_from(["claude-code", "x"]), st.one_of(GOOD_DURATIONS, st.just("none"))),
    ),
    actions=st.dictionaries(
        st.sampled_from(["send_email", "wire"]),
        _optional_keys(
            tools=st.sampled_from([["a.*"], []]),
            fields=st.sampled_from([{"to": "args.to"}, {}]),
            irreversible=st.sampled_from([True, False, None, "yes", 1]),
            description=st.sampled_from(["x", None]),
        ),
        max_size=2,
    ),
    predicates=st.sampled_from([{"p": "args.x > 1"}, {}]),
    hitl_policies=st.lists(VALID_RULE, max_size=3),
)


def _same(old: Any, new: Any, where: str = "") -> None:
    """Equal values of the same types, all the way down (True is not 1, 2.0 is not 2)."""
    assert type(old) is type(new), f"{where}: {old!r} ({type(old).__name__}) != {new!r} ({type(new).__name__})"
    if isinstance(old, dict):
        assert list(old) == list(new), f"{where}: keys {list(old)} != {list(new)}"
        for key in old:
            _same(old[key], new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert len(old) == len(new), f"{where}: {old!r} != {new!r}"
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(old, float) and math.isnan(old):
        assert math.isnan(new), f"{where}: nan != {new!r}"
    else:
        assert old == new, f"{where}: {old!r} != {new!r}"


def _outcome(model: Any, document: Any) -> tuple[str, Any]:
    try:
        return "accept", model.model_validate(document)
    except ValidationError as exc:
        return "reject", [(e["type"], e["loc"], e["msg"]) for e in exc.errors(include_url=False)]
    except Exception as exc:  # noqa: BLE001 - an oracle compares whatever either side does
        return "raise", (type(exc).__name__, str(exc))


def _compare(old_model: Any, new_model: Any, document: Any) -> str:
    (old_kind, old), (new_kind, new) = _outcome(old_model, document), _outcome(new_model, document)
    assert old_kind == new_kind, f"the oracle says {old_kind} {old!r}, the schema says {new_kind} {new!r}"
    if old_kind == "accept":
        _same(old.model_dump(), new.model_dump())
        if isinstance(new, schema.PolicyFile):  # the policy hash and what the engine reads off rules
            assert canonical_json(old.model_dump(mode="json")) == canonical_json(new.model_dump())
            for a, b in zip(old.hitl_policies, new.hitl_policies, strict=True):
                assert (a.actions, a.requirements()) == (b.actions, b.requirements())
    elif old_kind == "reject":
        assert old[0] == new[0], "the first error differs"
        assert old == new, "a later error differs"
    else:
        assert old == new
    return old_kind


def test_schema_reads_every_document_as_the_pydantic_models_did() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(document=st.one_of(POLICY, VALID_POLICY))
    def check(document: Any) -> None:
        seen[_compare(oracle.PolicyFile, schema.PolicyFile, document)] += 1
        rules = document.get("hitl_policies") if isinstance(document, dict) else None
        for rule in rules if isinstance(rules, list) else []:
            _compare(oracle.Rule, schema.Rule, rule)  # the web page validates one rule on its own

    check()
    assert seen["accept"] >= EXAMPLES // 10 and seen["reject"] >= EXAMPLES // 10, seen  # both sides exercised


def test_each_rule_reads_as_the_pydantic_rule_did() -> None:
    """Rules on their own (as the web page adds them) and as a policy's only rule (error locations)."""
    seen: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rule=st.one_of(RULE, NEAR_VALID_RULE, NEAR_VALID_RULE, VALID_RULE, CROSS_RULE))
    def check(rule: Any) -> None:
        seen[_compare(oracle.Rule, schema.Rule, rule)] += 1
        _compare(oracle.PolicyFile, schema.PolicyFile, {"hitl_policies": [rule]})

    check()
    assert seen["accept"] >= EXAMPLES // 10 and seen["reject"] >= EXAMPLES // 10, seen


def test_unknown_key_hint_names_the_same_keys() -> None:
    """yamlsrc suggests the allowed keys from the model's fields, found through the dataclasses now."""
    from signoff import yamlsrc

    for loc in [("x",), ("defaults", "x"), ("hitl_policies", 0, "x"), ("hitl_policies", 0, "rate", "x"), ("actions", "a", "x")]:
        assert yamlsrc._allowed_keys(schema.PolicyFile, loc[:-1]) == yamlsrc._allowed_keys(oracle.PolicyFile, loc[:-1])
        assert yamlsrc._allowed_keys(schema.PolicyFile, loc[:-1])
