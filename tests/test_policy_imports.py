"""Loading a policy leaves pydantic out of the process (issue #13: the proxy's idle memory).

pydantic_core is fine (the policy schema is validated by it); pydantic's model machinery cost
~8 MB and ~80 ms of start-up and is kept to signoff.yaml and user catalog files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import signoff

EVERY_KEY = """\
version: 1
catalog: true
internal_domains: [Company.com]
defaults:
  decision: allow
  timeout: 5m
  on_timeout: deny
  client_timeouts: {claude-code: 60s, cursor: none}
actions:
  send_email:
    tools: ["gmail.send_*", "*.send_email"]
    fields: {recipient: args.to, subject: args.subject}
    irreversible: true
    description: mail leaves the company
predicates:
  big_refund: "amount > 500 && currency == 'USD'"
hitl_policies:
  - name: outside mail
    action: [send_email]
    scope: external
    condition: recipient_is_external
    reason: mail to people outside
    timeout: 10m
    on_timeout: deny
    hold: retry
    channels: [web, cli]
    description: a held call
    approvers: [ops, finance]
    quorum: 2
    not_self: true
    rate: 5/1h
  - tool: "fetch.*"
    domains: "*.prod.com"
    rate: {max: 3, per: 1m, by: tool}
  - tool: "db.*"
    tables: [users]
    annotations: {destructiveHint: true}
    decision: deny
  - action: api_call
    condition: true
    decision: allow
"""

PROBE = """
import json, sys
from signoff.policy.engine import PRESETS, Policy, load_policy
for name in PRESETS:
    load_policy(name)
Policy.from_text(sys.argv[1], source="every-key.yaml")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core"))))
"""


def test_loading_presets_and_every_key_does_not_import_pydantic(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(signoff.__file__).parents[1])}  # this signoff, from any cwd
    argv = [sys.executable, "-c", PROBE, EVERY_KEY]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "pydantic_core" in loaded  # the probe really loaded and validated the policies
    assert [m for m in loaded if m.split(".")[0] == "pydantic"] == []


def test_the_every_key_policy_uses_every_key() -> None:
    import dataclasses

    import yaml

    from signoff.policy import schema

    def keys(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    data = yaml.safe_load(EVERY_KEY)
    rules = data["hitl_policies"]
    assert set(data) == keys(schema.PolicyFile)
    assert set(data["defaults"]) == keys(schema.Defaults)
    assert set(data["actions"]["send_email"]) == keys(schema.ActionDef)
    assert {k for rule in rules for k in rule} == keys(schema.Rule)
    assert set(rules[1]["rate"]) == keys(schema.RateLimit)
