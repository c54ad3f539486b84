"""How well the presets judge real calls: a corpus of calls to real MCP servers, each with the
decision the seed's intent expects under each preset (tests/corpus/README.md says how they were
written). Prints recall on expected holds and the false-hold rate on expected allows, per preset
and per seed block, for catalogued servers and for servers held out of the catalog.

    PYTHONPATH=src python tests/test_corpus.py     # the report alone
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
PRESETS = ("conservative", "balanced", "permissive")
INTERNAL = "company.com"
KEY_TABLES = {"users", "orders", "payments"}  # the seed's balanced block
# The seed blocks (tests/corpus/seed/*.yaml) by meaning: action -> when the rule holds the call.
SEED_RULES: dict[str, dict[str, str]] = {
    "conservative": {"send_email": "all", "api_call": "all", "purchase": "all", "file_delete": "all", "database_write": "all"},
    "balanced": {"send_email": "external", "purchase": "amount>100", "file_delete": "all", "database_write": "tables"},
    "permissive": {"file_delete": "all", "database_delete": "all", "payment": "all"},
}
# Catalogued servers must be judged perfectly; held-out servers (heuristics alone) get a floor.
CATALOG_MIN_RECALL, CATALOG_MAX_FALSE_HOLDS = 1.0, 0.05
HELD_OUT_MIN_RECALL, HELD_OUT_MAX_FALSE_HOLDS = 0.95, 0.25


@dataclass
class Case:
    file: str
    server: str
    tool: str
    args: dict[str, Any]
    expect: dict[str, str]  # policy name ("conservative", "seed:balanced", ...) -> allow | ask
    held_out: bool
    annotations: dict[str, Any] = field(default_factory=dict)
    arguments: tuple[str, ...] = ()  # the real tool's argument names (the proxy has its schema)
    why: str = ""

    @property
    def label(self) -> str:
        return f"{self.server}.{self.tool} {yaml.safe_dump(self.args, default_flow_style=True, width=1000).strip()[:110]}"


def _seed_expectations(raw: dict[str, Any]) -> dict[str, str]:
    """What each seed block means for this call, from the actions the call really performs."""
    acts = set(raw.get("acts", ()))
    if "database_delete" in acts:
        acts.add("database_write")  # a DELETE statement is a database write
    if "refund" in acts:
        acts.add("payment")  # the seed's payment covers refunds
    out = {}
    for block, rules in SEED_RULES.items():
        covering = [(a, when) for a, when in rules.items() if a in acts]
        if not covering:
            continue  # the block says nothing about this call
        held = False
        for _action, when in covering:
            if when == "all":
                held = True
            elif when == "external":
                held |= raw.get("ext", True)  # no recipient found counts as external
            elif when == "amount>100":
                held |= "amount" not in raw or float(raw["amount"]) > 100
            elif when == "tables":
                tables = raw.get("tables")
                held |= tables is None or bool({t.lower() for t in tables} & KEY_TABLES)
        out[f"seed:{block}"] = "ask" if held else "allow"
    return out


def load_corpus() -> list[Case]:
    from signoff.policy.catalog_load import load_catalog

    catalog = load_catalog()
    cases: list[Case] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        held_out = bool(doc.get("held_out"))
        tools = doc.get("tools") or {}
        for raw in doc["calls"]:
            expect = dict(zip(PRESETS, raw["expect"].split(), strict=True))
            expect.update(_seed_expectations(raw))
            if held_out:
                real = tools.get(raw["tool"], {})
                annotations, arguments = dict(real.get("annotations", {})), tuple(real.get("arguments", ()))
            else:
                entry = catalog.lookup(doc["catalog"], raw["tool"])
                annotations = dict(entry.annotations) if entry else {}
                arguments = entry.arguments if entry else ()
            cases.append(
                Case(
                    path.name,
                    doc["server"],
                    raw["tool"],
                    raw.get("args") or {},
                    expect,
                    held_out,
                    annotations,
                    arguments,
                    raw.get("why", ""),
                )
            )
    return cases


# ---- the corpus itself is sound -----------------------------------------------------------------


def test_corpus_size_and_spread() -> None:
    cases = load_corpus()
    catalogued = {c.server for c in cases if not c.held_out}
    held_out = {c.server for c in cases if c.held_out}
    assert len(cases) >= 250, len(cases)
    assert len(catalogued) >= 30, sorted(catalogued)
    assert len(held_out) >= 5, sorted(held_out)
    allows = sum(c.expect["conservative"] == "allow" for c in cases)
    assert allows >= 80, "plenty of harmless reads, so false holds are measured"


def test_every_catalogued_server_has_calls_in_the_corpus() -> None:
    from signoff.policy.catalog_load import load_catalog

    covered = {c.server for c in load_corpus() if not c.held_out}
    assert set(load_catalog().servers) <= covered, sorted(set(load_catalog().servers) - covered)


def test_corpus_uses_real_tool_names_and_argument_keys() -> None:
    from signoff.policy.catalog_load import load_catalog

    catalog = load_catalog()
    for path in sorted(CORPUS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for raw in doc["calls"]:
            if doc.get("held_out"):
                real = doc["tools"].get(raw["tool"])
                assert real is not None, f"{path.name}: {raw['tool']} is not listed in tools:"
                arguments = real["arguments"]
            else:
                entry = catalog.lookup(doc["catalog"], raw["tool"])
                assert entry is not None, f"{path.name}: {doc['catalog']}.{raw['tool']} is not in the catalog"
                arguments = entry.arguments
            unknown = set(raw.get("args") or {}) - set(arguments)
            assert not unknown, f"{path.name}: {raw['tool']} has no argument {sorted(unknown)} (real: {arguments})"


def test_held_out_servers_really_are_left_out_of_the_catalog() -> None:
    from signoff.policy.catalog import SERVERS_DIR
    from signoff.policy.catalog_load import load_catalog

    catalog = load_catalog()
    for path in sorted(CORPUS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("held_out"):
            assert catalog.identify(doc["server"]) is None, doc["server"]
            assert not (SERVERS_DIR / f"{doc['server']}.yaml").exists()
            assert "@" in doc["source"], f"{path.name}: name the package@version the tools came from"


def test_expectations_nest_from_permissive_to_conservative() -> None:
    """Whatever permissive holds, balanced holds; whatever balanced holds, conservative holds."""
    order = {"allow": 0, "ask": 1}
    for c in load_corpus():
        levels = [order[c.expect[p]] for p in PRESETS]
        assert levels == sorted(levels, reverse=True), f"{c.file}: {c.label}: {c.expect}"


# ---- how the engine judges them ----------------------------------------------------------------


def _policy_text(name: str) -> str:
    if name.startswith("seed:"):
        text = (CORPUS / "seed" / f"{name[5:]}.yaml").read_text()
    else:
        text = (ROOT / "src" / "signoff" / "policy" / "presets" / f"{name}.yaml").read_text()
    if "internal_domains: []" in text:
        return text.replace("internal_domains: []", f"internal_domains: [{INTERNAL}]", 1)
    return f"internal_domains: [{INTERNAL}]\n{text}"


@dataclass
class Score:
    held: int = 0
    expected_holds: int = 0
    false_holds: int = 0
    expected_allows: int = 0
    misses: list[str] = field(default_factory=list)
    wrong_holds: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.held / self.expected_holds if self.expected_holds else 1.0

    @property
    def false_hold_rate(self) -> float:
        return self.false_holds / self.expected_allows if self.expected_allows else 0.0


def evaluate(name: str, cases: Iterable[Case]) -> Score:
    from signoff.errors import SignoffError
    from signoff.model import ToolCall
    from signoff.policy.engine import Policy

    score = Score()
    try:
        policy = Policy.from_text(_policy_text(name), source=f"{name}.yaml")
    except SignoffError as exc:
        policy, load_error = None, f"the policy does not load: {exc}"
    for c in cases:
        expected = c.expect.get(name)
        if expected is None:
            continue
        if policy is None:  # nothing is held: every expected hold is a miss
            score.expected_holds += expected == "ask"
            score.expected_allows += expected == "allow"
            if expected == "ask" and not score.misses:
                score.misses.append(load_error)
            continue
        try:
            schema = {"type": "object", "properties": {name: {} for name in c.arguments}}
            call = ToolCall(c.server, c.tool, c.args, c.annotations, input_schema=schema)
            verdict = policy.evaluate(call).verdict.value
        except Exception as exc:  # noqa: BLE001 - a crash is a finding to report, not to hide
            verdict = f"error: {type(exc).__name__}: {exc}"[:80]
        held = verdict in ("ask", "deny")
        if expected == "ask":
            score.expected_holds += 1
            score.held += held
            if not held:
                score.misses.append(f"{c.file}: {c.label} -> {verdict}" + (f"  ({c.why})" if c.why else ""))
        else:
            score.expected_allows += 1
            score.false_holds += held
            if held:
                score.wrong_holds.append(f"{c.file}: {c.label} -> {verdict}")
    return score


POLICIES = [*PRESETS, *(f"seed:{p}" for p in PRESETS)]


def report(cases: list[Case] | None = None) -> dict[tuple[str, bool], Score]:
    cases = cases if cases is not None else load_corpus()
    scores = {}
    for name in POLICIES:
        for held_out in (False, True):
            scores[(name, held_out)] = evaluate(name, [c for c in cases if c.held_out == held_out])
    return scores


def format_report(scores: dict[tuple[str, bool], Score], detail: int = 15) -> str:
    lines = ["policy              servers    recall        false holds"]
    for (name, held_out), s in scores.items():
        lines.append(
            f"{name:<19} {'held-out' if held_out else 'catalog':<10} "
            f"{s.recall:6.1%} ({s.held}/{s.expected_holds})  {s.false_hold_rate:6.1%} ({s.false_holds}/{s.expected_allows})"
        )
    for (name, held_out), s in scores.items():
        where = "held-out" if held_out else "catalog"
        for title, items in (("misses", s.misses), ("false holds", s.wrong_holds)):
            if items:
                lines.append(f"-- {name} {where} {title} ({len(items)}):")
                lines += [f"   {m}" for m in items[:detail]] + (
                    [f"   ... {len(items) - detail} more"] if len(items) > detail else []
                )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def scores() -> dict[tuple[str, bool], Score]:
    result = report()
    print("\n" + format_report(result), file=sys.stderr)
    return result


@pytest.mark.parametrize("name", POLICIES)
def test_catalogued_servers_are_judged_as_the_seed_intends(name: str, scores) -> None:
    s = scores[(name, False)]
    problems = []
    if s.recall < CATALOG_MIN_RECALL:
        problems.append(f"recall {s.recall:.1%} < 100%; misses:\n  " + "\n  ".join(s.misses))
    if s.false_hold_rate > CATALOG_MAX_FALSE_HOLDS:
        problems.append(f"false holds {s.false_hold_rate:.1%} > 5%:\n  " + "\n  ".join(s.wrong_holds))
    assert not problems, f"{name}: " + "\n".join(problems)


@pytest.mark.parametrize("name", POLICIES)
def test_held_out_servers_by_heuristics_alone(name: str, scores) -> None:
    """Softer: without a catalog entry the engine has only annotations and verbs. Failing closed
    keeps recall high at the price of some false holds; the floor stops heuristics regressing."""
    s = scores[(name, True)]
    assert s.recall >= HELD_OUT_MIN_RECALL and s.false_hold_rate <= HELD_OUT_MAX_FALSE_HOLDS, (
        f"{name} held-out: recall {s.recall:.1%} (floor {HELD_OUT_MIN_RECALL:.0%}), false holds "
        f"{s.false_hold_rate:.1%} (ceiling {HELD_OUT_MAX_FALSE_HOLDS:.0%})\n  misses: "
        + "\n  ".join(s.misses)
        + "\n  false holds: "
        + "\n  ".join(s.wrong_holds)
    )


if __name__ == "__main__":
    print(format_report(report(), detail=int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
