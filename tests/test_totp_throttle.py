"""TOTP guessing on the approval page is throttled: per client and overall, with growing lockouts.

Before: ~500 wrong codes a second were answered, so the 3-in-a-million chance per guess was a
matter of an hour. Now: a few free tries, then 1 s, 2 s, 4 s … (429 + Retry-After, logged), a
right code refused too while locked, and counters per client and for the whole page.
"""

from __future__ import annotations

import logging

import pyotp
import pytest
from starlette.testclient import TestClient

from signoff.approvals.broker import Broker
from signoff.web.app import UI, create_app
from signoff.web.security import Guard, TotpThrottle
from test_web import ORIGIN, TOKEN, hold, post


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker() -> Broker:
    return Broker()


def page(guard: Guard, broker: Broker, host: str = "testclient") -> TestClient:
    client = TestClient(create_app(UI(broker, guard)), base_url=ORIGIN, follow_redirects=False, client=(host, 5000))
    assert client.get(f"/?token={TOKEN}").status_code == 303
    return client


def csrf(client: TestClient) -> str:
    return client.get("/").text.split('name="csrf" content="')[1].split('"')[0]


def guess(client: TestClient, held_id: str, code: str):
    return post(client, "/api/decide", {"id": held_id, "approve": True, "totp": code}, csrf(client))


def test_totp_wrong_guesses_lock_the_client_out_with_growing_waits(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    secret, clock = pyotp.random_base32(), Clock()
    guard = Guard(TOKEN, "127.0.0.1", 8765, totp_secret=secret)
    guard.throttle = TotpThrottle(clock)
    client = page(guard, broker)
    held_id = hold(broker)
    with caplog.at_level(logging.WARNING, logger="signoff.web"):
        for _ in range(TotpThrottle.FREE_PER_CLIENT):
            assert guess(client, held_id, "000000").status_code == 403
        assert guess(client, held_id, "000000").status_code == 403  # one too many: locked for 1 s
        locked = guess(client, held_id, pyotp.TOTP(secret).now())  # even the right code
        assert locked.status_code == 429 and locked.headers["Retry-After"] == "1"
        assert "too many wrong TOTP codes" in locked.json()["error"]
        assert broker.get(held_id).status == "pending"
        clock.now += 1
        assert guess(client, held_id, "111111").status_code == 403
        again = guess(client, held_id, "222222")
        assert again.status_code == 429 and again.headers["Retry-After"] == "2"  # doubled
    assert "wrong TOTP code from testclient" in caplog.text and "TOTP locked for 2 s" in caplog.text
    clock.now += 2
    assert guess(client, held_id, pyotp.TOTP(secret).now()).status_code == 200
    assert broker.get(held_id).status == "approved"
    other = hold(broker, path="/other")  # a right code forgets this client's failures
    assert guess(client, other, "333333").status_code == 403


def test_totp_guesses_from_many_clients_lock_the_page(broker: Broker) -> None:
    secret, clock = pyotp.random_base32(), Clock()
    guard = Guard(TOKEN, "127.0.0.1", 8765, totp_secret=secret)
    guard.throttle = TotpThrottle(clock)
    held_id = hold(broker)
    for i in range(TotpThrottle.FREE_GLOBAL):
        assert guess(page(guard, broker, f"10.0.0.{i}"), held_id, "000000").status_code == 403
    fresh = page(guard, broker, "10.0.1.1")  # never guessed before, but the page is locked
    assert guess(fresh, held_id, "000000").status_code == 403
    refused = guess(fresh, held_id, pyotp.TOTP(secret).now())
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert broker.get(held_id).status == "pending"


def test_totp_lockout_is_capped_and_forgotten_after_a_quiet_hour() -> None:
    clock = Clock()
    throttle = TotpThrottle(clock)
    waits = [throttle.failed("x") for _ in range(20)]
    assert waits[:3] == [0, 0, 0] and waits[3:6] == [1, 2, 4] and max(waits) == TotpThrottle.LONGEST
    clock.now += TotpThrottle.FORGET + 1
    assert throttle.retry_after("x") == 0 and throttle.failed("x") == 0
