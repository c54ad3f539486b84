"""Guessing, bounded: wrong TOTP codes (the page) and wrong sign-ins (team mode) per client and
overall, with lockouts that double. One class, used by web/security.py and team/factors.py."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable


class Throttle:
    """Wrong codes or passwords, counted per client and overall; past a few free tries each wrong code
    doubles the lockout (1 s, 2 s, 4 s … up to 15 min). While locked, every code is refused —
    a right one too — so guessing is bounded to a few dozen tries an hour instead of ~500/s.
    Counters are forgotten after a quiet `FORGET` seconds or (per client) a right code.
    """

    what = "sign-in"
    short = "sign-in"
    log = logging.getLogger("signoff.team")
    FREE_PER_CLIENT = 3
    FREE_GLOBAL = 10
    BASE = 1.0
    LONGEST = 900.0
    FORGET = 3600.0
    MAX_CLIENTS = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._clients: OrderedDict[str, list[float]] = OrderedDict()  # client -> [failures, last, locked until]
        self._global = [0.0, 0.0, 0.0]

    def _entry(self, client: str, now: float) -> list[float]:
        entry = self._clients.get(client)
        if entry is None or now - entry[1] > self.FORGET:
            entry = [0.0, now, 0.0]
        self._clients[client] = entry
        self._clients.move_to_end(client)
        while len(self._clients) > self.MAX_CLIENTS:
            self._clients.popitem(last=False)
        return entry

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try a code again (0: now)."""
        now = self.clock()
        mine = self._clients.get(client)
        until = max(mine[2] if mine else 0.0, self._global[2])
        return max(0.0, until - now)

    def _fail(self, entry: list[float], free: int, now: float) -> float:
        if now - entry[1] > self.FORGET:
            entry[0] = 0.0
        entry[0] += 1
        entry[1] = now
        over = int(entry[0]) - free
        if over <= 0:
            return 0.0
        wait = min(self.LONGEST, self.BASE * 2 ** (over - 1))
        entry[2] = now + wait
        return wait

    def failed(self, client: str) -> float:
        """Count a wrong code; the lockout (seconds) it starts, 0 if none."""
        now = self.clock()
        wait = max(
            self._fail(self._entry(client, now), self.FREE_PER_CLIENT, now), self._fail(self._global, self.FREE_GLOBAL, now)
        )
        self.log.warning(
            "wrong %s from %s (%d in a row; %d overall)%s",
            self.what,
            client,
            self._clients[client][0],
            self._global[0],
            f"; {self.short} locked for {math.ceil(wait)} s" if wait else "",
        )
        return wait

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
