"""Properties: random arguments never crash evaluation, and a matching deny always wins."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_helpers import SEED, call
from signoff.model import Verdict
from signoff.policy import Policy, load_policy

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
    | st.sampled_from(["https://payments.stripe.com/x", "DELETE FROM users", "a@b.com", "SELECT * FROM orders", "DROP ((("]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
TOOLS = st.sampled_from(["fs.delete_file", "gmail.send_email", "fetch.fetch", "shop.checkout", "db.execute_sql", "x.y", "shell.run"])


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

