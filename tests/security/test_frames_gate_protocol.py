"""Every gate implements the whole Gate protocol: the relay calls `refused` and `policy_hash`
on whatever gate it has, and a gate missing one would crash the proxy on a refused call."""

from __future__ import annotations

import inspect

import pytest

from signoff import gate
from signoff.approvals import gate as approval

PROTOCOL = sorted(name for name, _ in inspect.getmembers(gate.Gate, inspect.isfunction) if not name.startswith("_"))


def gate_classes() -> list[type]:
    found = []
    for module in (gate, approval):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls is not gate.Gate and cls.__module__ == module.__name__ and hasattr(cls, "check") and hasattr(cls, "hold"):
                found.append(cls)
    return found


def test_the_protocol_has_the_relays_refusal_methods() -> None:
    assert {"check", "hold", "finished", "client_answer", "refused", "policy_hash"} <= set(PROTOCOL)


@pytest.mark.parametrize("cls", gate_classes(), ids=lambda c: c.__name__)
def test_every_gate_implements_every_method_the_relay_calls(cls: type) -> None:
    missing = [name for name in PROTOCOL if not callable(getattr(cls, name, None))]
    assert not missing, f"{cls.__name__} lacks {missing}"
