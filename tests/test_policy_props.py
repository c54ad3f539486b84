"""Properties: random arguments never crash evaluation, and a matching deny always wins."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_helpers import SEED, call
from signoff.model import Verdict
from signoff.policy.engine import Policy, load_policy

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["https://payments.stripe.com/x", "DELETE FROM users", "a@b.com", "SELECT * FROM orders", "DROP ((("]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
TOOLS = st.sampled_from(
    ["fs.delete_file", "gmail.send_email", "fetch.fetch", "shop.checkout", "db.execute_sql", "x.y", "shell.run"]
)


@settings(max_examples=300, deadline=None)
@given(tool=TOOLS, args=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_random_arguments_never_crash_evaluation(tool: str, args: dict) -> None:
    for policy in (Policy.from_text(SEED, source="seed.yaml"), load_policy("conservative"), load_policy("balanced")):
        decision = policy.evaluate(call(tool, args))
        assert decision.verdict in (Verdict.ALLOW, Verdict.ASK, Verdict.DENY)


DENY_FIRST = Policy.from_text(
    """
hitl_policies:
  - tool: "*"
    decision: allow
  - action: file_delete
  - tool: "*"
    condition: "has(args.danger)"
    decision: deny
""",
    source="p.yaml",
)


@settings(max_examples=200, deadline=None)
@given(tool=TOOLS, args=st.dictionaries(st.text(max_size=10), json_values, max_size=5), danger=json_values)
def test_a_matching_deny_always_wins(tool: str, args: dict, danger) -> None:
    assert DENY_FIRST.evaluate(call(tool, {**args, "danger": danger})).verdict is Verdict.DENY


CEL_HEAVY = Policy.from_text(
    """
internal_domains: [company.com]
actions:
  purchase: {fields: {amount: args.total, currency: args.currency}}
predicates:
  big: "amount > 100 && currency == 'USD'"
hitl_policies:
  - tool: "*"
    condition: "args.amount > 100"
  - tool: "*"
    condition: "args.to.endsWith('@company.com') || size(args.items) > 2"
    decision: allow
  - tool: "*"
    condition: "args.a / args.b > 1 && int(args.n) + 1 > 0"
  - tool: "*"
    condition: "args.name.matches('^adm') && args.tags[0] == 'x'"
    decision: deny
  - action: purchase
    condition: big
  - tool: "*"
    scope: external
    condition: url_is_external || recipient_is_external
  - tool: "*"
    domains: ["*.stripe.com"]
    tables: ["pay*"]
""",
    source="props.yaml",
)
NAMES = st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    server=NAMES,
    tool=NAMES,
    args=st.dictionaries(
        st.sampled_from(["amount", "to", "items", "a", "b", "n", "name", "tags", "total", "currency", "url", "sql"])
        | st.text(max_size=6),
        json_values,
        max_size=6,
    ),
    hints=st.dictionaries(
        st.sampled_from(["readOnlyHint", "destructiveHint", "openWorldHint", "title"]), json_values, max_size=3
    ),
)
def test_cel_conditions_over_random_arguments_never_crash(server: str, tool: str, args: dict, hints: dict) -> None:
    from signoff.model import ToolCall

    c = ToolCall(server, tool, args, hints)
    decision = CEL_HEAVY.evaluate(c)
    assert decision.verdict in (Verdict.ALLOW, Verdict.ASK, Verdict.DENY)
    assert CEL_HEAVY.evaluate(c) == decision  # deterministic
    explained, results = CEL_HEAVY.explain(c)
    assert explained == decision and len(results) == 7


@settings(max_examples=200, deadline=None)
@given(
    verdicts=st.lists(st.sampled_from(["allow", "ask", "deny"]), min_size=1, max_size=8),
    args=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_the_strongest_matching_verdict_wins_and_the_first_of_equals_names_it(verdicts: list[str], args: dict) -> None:
    text = "hitl_policies:\n" + "".join(f"  - tool: '*'\n    decision: {v}\n    reason: r{i}\n" for i, v in enumerate(verdicts))
    decision = Policy.from_text(text, source="p.yaml").evaluate(call("x.y", args))
    strongest = max(verdicts, key=["allow", "ask", "deny"].index)
    assert decision.verdict.value == strongest and decision.reason == f"r{verdicts.index(strongest)}"


# ---------------------------------------------------------------------------- issue #11: argument understanding

from signoff.policy.understand import money, recipients, shell, urls  # noqa: E402
from signoff.policy.understand.sql import analyze as analyze_sql  # noqa: E402

SHELLISH = st.lists(
    st.sampled_from([*"abcrm -|&;$()`'\"\\<>{}*/.=\n", "rm ", "sh -c ", "curl ", "psql -c ", "sudo ", "$(", "<<EOF\n"]),
    max_size=30,
).map("".join)
REAL_TOOLS = st.sampled_from(
    [
        "shell.run_command",
        "desktop.start_process",
        "gmail.send_email",
        "stripe.create_payment_intent",
        "postgres.query",
        "fetch.fetch",
        "mongodb.delete-many",
        "github.create_issue",
        "x.y",
    ]
)
PRESETS_LOADED = [load_policy(p) for p in ("conservative", "balanced", "permissive")]


@settings(max_examples=300, deadline=None)
@given(
    tool=REAL_TOOLS,
    args=st.dictionaries(
        st.sampled_from(
            ["command", "cmd", "to", "cc", "amount", "sql", "url", "host", "path", "collection", "currency", "dryRun"]
        )
        | st.text(max_size=6),
        json_values | SHELLISH,
        max_size=6,
    ),
)
def test_random_arguments_never_crash_any_preset_and_decisions_explain_themselves(tool: str, args: dict) -> None:
    for policy in PRESETS_LOADED:
        decision = policy.evaluate(call(tool, args))
        assert decision.verdict in (Verdict.ALLOW, Verdict.ASK, Verdict.DENY)
        assert isinstance(decision.reason, str) and "\n" not in decision.reason
        if decision.verdict is not Verdict.ALLOW:
            assert decision.reason and "Traceback" not in decision.reason


@settings(max_examples=300, deadline=None)
@given(command=SHELLISH)
def test_shell_analysis_never_crashes_and_unreadable_means_every_action(command: str) -> None:
    found = shell.analyze(command)
    if found.unparseable:
        assert found.actions >= shell.EVERY_ACTION
        for policy in PRESETS_LOADED:  # every preset holds a command it cannot read
            assert policy.evaluate(call("shell.run_command", {"command": command})).verdict is Verdict.ASK


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40))
def test_other_readers_never_crash(text: str) -> None:
    urls.host_of_value(text)
    urls.hosts_in_text("see http://" + text)
    recipients.any_external(recipients.collect(text), ("company.com",))
    money.parse(text)
    analyze_sql([text])


@settings(max_examples=200, deadline=None)
@given(amount=st.text(max_size=12).filter(lambda t: money.parse(t) is None))
def test_an_unreadable_amount_is_held(amount: str) -> None:
    for policy in PRESETS_LOADED[:2]:
        assert policy.evaluate(call("stripe.create_payment_intent", {"amount": amount})).verdict is Verdict.ASK


@settings(max_examples=200, deadline=None)
@given(name=st.from_regex(r"[a-z]{3,10}_[a-z]{3,10}", fullmatch=True))
def test_an_unknown_tool_is_held_by_conservative(name: str) -> None:
    from signoff.policy.understand.names import by_name

    actions, reads, _ = by_name("srv", name)
    decision = PRESETS_LOADED[0].evaluate(call(f"srv.{name}", {}))
    assert (decision.verdict is Verdict.ALLOW) is (reads and not actions - {"sensitive_read"} and "sensitive_read" not in actions)
