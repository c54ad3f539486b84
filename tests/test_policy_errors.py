"""Every bad policy gets one line: file:line: field: what is wrong and what to do."""

from __future__ import annotations

import pytest

from signoff.errors import PolicyError
from signoff.policy.engine import Policy, load_policy

CASES = [
    ("hitl_policies:\n  - action: file_delete\n    scope: [all\n", "p.yaml:4: invalid YAML"),
    (
        "hitl_policies:\n  - action: file_delete\n    scop: all\n",
        "p.yaml:3: hitl_policies[0].scop: unknown key 'scop'; allowed here: name, action, tool, scope",
    ),
    ("version: 1\nhitl_pollicies: []\n", "p.yaml:2: hitl_pollicies: unknown key 'hitl_pollicies'; allowed here: version"),
    (
        "hitl_policies:\n  - tool: '*'\n  - action: send_email\n    condition: 'amount >'\n",
        "p.yaml:4: hitl_policies[1].condition: invalid CEL expression 'amount >'",
    ),
    ("hitl_policies:\n  - tool: 'fs.[abc'\n", "p.yaml:2: hitl_policies[0].tool: bad glob 'fs.[abc': unbalanced [ ]"),
    (
        "hitl_policies:\n  - tool: '*'\n    timeout: soon\n",
        "p.yaml:3: hitl_policies[0].timeout: 'soon' is not a duration; write e.g. 30s, 5m or 1h",
    ),
    (  # YAML's .nan/.inf are floats: a held call must still end in an answer
        "defaults:\n  timeout: .nan\nhitl_policies: []\n",
        "p.yaml:2: defaults.timeout: nan is not a duration signoff can wait for; write at most 366 days",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    rate: {max: 1, per: .inf}\n",
        "p.yaml:3: hitl_policies[0].rate.per: inf is not a duration signoff can wait for",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    decision: maybe\n",
        "p.yaml:3: hitl_policies[0].decision: Input should be 'ask', 'allow' or 'deny'",
    ),
    ("hitl_policies:\n  - scope: all\n", "p.yaml:2: hitl_policies[0]: a rule needs `action`, `tool` or `annotations`"),
    ("hitl_policies:\n  - action: teleport\n", "p.yaml:2: hitl_policies[0].action: action 'teleport' has no `actions:` entry"),
    (
        "defaults:\n  on_timeout: allow\nhitl_policies:\n  - action: file_delete\n",
        "p.yaml:2: defaults.on_timeout: on_timeout: allow is refused for the irreversible action file_delete",
    ),
    (
        "hitl_policies:\n  - action: purchase\n    on_timeout: allow\n",
        "p.yaml:3: hitl_policies[0].on_timeout: on_timeout: allow is refused for the irreversible action purchase",
    ),
    ("predicates:\n  big: 'amount >>> 3'\nhitl_policies: []\n", "p.yaml:2: predicates.big: invalid CEL expression"),
    (
        "actions:\n  pay:\n    fields: {amount: total}\nhitl_policies: []\n",
        "p.yaml:3: actions.pay.fields: field 'amount': write a path into the arguments such as args.to",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    annotations: {dangerous: true}\n",
        "p.yaml:3: hitl_policies[0].annotations: unknown tool annotation 'dangerous'",
    ),
    ("hitl_policies:\n  - tool: '*'\n    channels: [email]\n", "p.yaml:3: hitl_policies[0].channels[0]: Input should be"),
    (
        "hitl_policies:\n  - tool: '*'\n    condition: a > 1\n    condition: b > 1\n",
        "p.yaml:4: hitl_policies[0].condition: duplicate key 'condition' (also on line 3); keep one",
    ),
    (
        "defaults:\n  timeout: 5 minutes\nhitl_policies: []\n",
        "p.yaml:2: defaults.timeout: '5 minutes' is not a duration; write e.g. 30s, 5m or 1h",
    ),
    ("defaults:\n  timeout: -3\nhitl_policies: []\n", "p.yaml:2: defaults.timeout: a duration must be positive"),
    (
        "actions:\n  send_email:\n    tools:\n      - 'gmail.*'\n      - 'gmail.[send'\nhitl_policies: []\n",
        "p.yaml:5: actions.send_email.tools[1]: bad glob 'gmail.[send'",
    ),
    (
        "hitl_policies:\n  - action: api_call\n    domains: ['prod.*', '']\n",
        "p.yaml:3: hitl_policies[0].domains[1]: an empty pattern matches nothing; remove it or write *",
    ),
    ("hitl_policies:\n  - action: database_write\n    tables: ['users]']\n", "p.yaml:3: hitl_policies[0].tables[0]: bad glob"),
    (
        "predicates:\n  url_is_external: 'true'\nhitl_policies: []\n",
        "p.yaml:2: predicates.url_is_external: 'url_is_external' is a built-in name; rename the predicate",
    ),
    (
        "internal_domains: {company.com: 1}\nhitl_policies: []\n",  # one domain as a string is accepted (seed style)
        "p.yaml:1: internal_domains: Input should be a valid list (got {'company.com': 1}); write a YAML list, e.g. [a, b]",
    ),
    (
        "hitl_policies:\n  - tool: '*'\n    annotations: {destructiveHint: maybe}\n",
        "p.yaml:3: hitl_policies[0].annotations.destructiveHint: Input should be a valid boolean",
    ),
    ("hitl_policies:\n  - tool: '*'\n\tdecision: deny\n", "p.yaml:3: invalid YAML: found character '\\t'"),
    ("version: 2\nhitl_policies: []\n", "p.yaml:1: version: Input should be 1 (got 2)"),
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


def test_load_yaml_reads_a_path_and_names_it(tmp_path) -> None:
    from signoff.yamlsrc import load_yaml

    path = tmp_path / "signoff.yaml"
    path.write_text("servers:\n  git:\n    command: uvx\n")
    data, locator = load_yaml(path)
    assert data == {"servers": {"git": {"command": "uvx"}}} and locator.line_of(("servers", "git", "command")) == 3
    assert locator.line_of(("servers", "git", "command", "not", "there")) == 3  # nearest ancestor
    with pytest.raises(PolicyError, match=r"nope\.yaml: cannot read the file"):
        load_yaml(tmp_path / "nope.yaml", error=PolicyError)
