"""Every bad policy gets one line: file:line: field: what is wrong and what to do."""

from __future__ import annotations

import pytest

from signoff.errors import PolicyError
from signoff.policy import Policy, load_policy

CASES = [
    ("hitl_policies:\n  - action: file_delete\n    scope: [all\n", "p.yaml:4: invalid YAML"),
    ("hitl_policies:\n  - action: file_delete\n    scop: all\n",
     "p.yaml:3: hitl_policies[0].scop: unknown key 'scop'; allowed here: name, action, tool, scope"),
    ("version: 1\nhitl_pollicies: []\n", "p.yaml:2: hitl_pollicies: unknown key 'hitl_pollicies'; allowed here: version"),
    ("hitl_policies:\n  - tool: '*'\n  - action: send_email\n    condition: 'amount >'\n",
     "p.yaml:4: hitl_policies[1].condition: invalid CEL expression 'amount >'"),
    ("hitl_policies:\n  - tool: 'fs.[abc'\n", "p.yaml:2: hitl_policies[0].tool: bad glob 'fs.[abc': unbalanced [ ]"),
    ("hitl_policies:\n  - tool: '*'\n    timeout: soon\n", "p.yaml:3: hitl_policies[0].timeout: 'soon' is not a duration; write e.g. 30s, 5m or 1h"),
    ("hitl_policies:\n  - tool: '*'\n    decision: maybe\n", "p.yaml:3: hitl_policies[0].decision: Input should be 'ask', 'allow' or 'deny'"),
    ("hitl_policies:\n  - scope: all\n", "p.yaml:2: hitl_policies[0]: a rule needs `action`, `tool` or `annotations`"),
    ("hitl_policies:\n  - action: teleport\n", "p.yaml:2: hitl_policies[0].action: action 'teleport' has no `actions:` entry"),
    ("defaults:\n  on_timeout: allow\nhitl_policies:\n  - action: file_delete\n",
     "p.yaml:2: defaults.on_timeout: on_timeout: allow is refused for the irreversible action file_delete"),
    ("hitl_policies:\n  - action: purchase\n    on_timeout: allow\n",
     "p.yaml:3: hitl_policies[0].on_timeout: on_timeout: allow is refused for the irreversible action purchase"),
    ("predicates:\n  big: 'amount >>> 3'\nhitl_policies: []\n", "p.yaml:2: predicates.big: invalid CEL expression"),
    ("actions:\n  pay:\n    fields: {amount: total}\nhitl_policies: []\n",
     "p.yaml:3: actions.pay.fields: field 'amount': write a path into the arguments such as args.to"),
    ("hitl_policies:\n  - tool: '*'\n    annotations: {dangerous: true}\n",
     "p.yaml:3: hitl_policies[0].annotations: unknown tool annotation 'dangerous'"),
    ("hitl_policies:\n  - tool: '*'\n    channels: [email]\n", "p.yaml:3: hitl_policies[0].channels[0]: Input should be"),
    ("- just a list\n", "p.yaml:1: a policy must be a mapping with `hitl_policies:`"),
    ("", "p.yaml:1: the policy file is empty"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_error_names_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_text(text, source="p.yaml")
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_missing_file_names_the_presets(tmp_path) -> None:
    with pytest.raises(PolicyError, match="give a path or one of conservative, balanced, permissive"):
        load_policy(str(tmp_path / "nope.yaml"))
