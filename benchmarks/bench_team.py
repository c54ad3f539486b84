"""Team mode on one PostgreSQL server: many proxies (each its own SIGNOFF_HOME, as on separate
machines), held calls decided concurrently by several approvers, and the kill switch.

1. PROXIES `signoff run` processes each make CALLS/PROXIES held calls at once; APPROVERS race to
   decide every pending call. `--via store`: threads deciding through the store directly (each its
   own connections). `--via page,cli`: people as in tests/test_team_multihost.py: APPROVERS-1 signed
   in to one `signoff ui` page (password + TOTP, CSRF) deciding through its HTTP API, and one with
   `signoff approve/deny --token` (a subprocess per decision). Checked: every call answered exactly
   once, every held row decided once, the audit chain verifies. Measured: from the winning
   decision (`decided_at`, set in its transaction) to the result at the client (p50/p99).
2. One call held per proxy, then `kill` (through the store, or on the page with --via page,cli):
   time until every client has its answer, and until a new call on every proxy is refused.
Usage: python benchmarks/bench_team.py [--proxies 20] [--calls 500] [--approvers 3] [--via store|page,cli] [--smoke]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from team_harness import (CliPerson, PagePerson, StdioProxy, answer_text, base_env,  # noqa: E402
                          proxy_env, run_racers, start_page)

PASSWORD = "bench password, long enough"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def store_approver(name: str, stop: threading.Event, lost: list[int]) -> None:
    from signoff.approvals.broker import Broker
    from signoff.approvals.store_pg import PgStore
    from signoff.errors import AlreadyDecidedError

    broker = Broker(PgStore(os.environ["SIGNOFF_STORE"]))
    rng = random.Random(name)
    while not stop.is_set():
        calls = broker.store.list_held("pending")
        rng.shuffle(calls)
        for held in calls:
            try:
                broker.decide(held.id, rng.random() < 0.8, by=name, channel="cli")
            except AlreadyDecidedError:
                lost[0] += 1
        if not calls:
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proxies", type=int, default=20)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--approvers", type=int, default=3)
    parser.add_argument("--via", choices=["store", "page,cli"], default="store")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.proxies, args.calls, args.approvers = 3, 30, 2
    from pg_server import PgServer, bindir, free_port

    found = bindir()
    if found is None:
        raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl): install Debian's `postgresql` package")
    server = PgServer(found).init().start()
    os.environ["SIGNOFF_STORE"] = url = server.url()
    scratch = Path(tempfile.mkdtemp(prefix="signoff-team-"))
    os.environ["SIGNOFF_HOME"] = str(scratch / "admin")
    policy = scratch / "policy.yaml"
    policy.write_text("hitl_policies:\n  - tool: '*.echo'\n    timeout: 10m\n")
    env = lambda name: proxy_env(base_env(), scratch / name, url)  # noqa: E731
    proxies: list[StdioProxy] = []
    page = None
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; via {args.via}")
    try:
        from signoff.approvals.audit import AuditLog
        from signoff.approvals.store import open_store

        store = open_store()
        people: list = []
        if args.via == "page,cli":
            from signoff.team.users import People

            team = People(store)
            names = [f"person{k}" for k in range(args.approvers)]
            secrets = {name: team.add(name, ["approver"], PASSWORD) for name in names}
            page = start_page(env("page"), free_port(), scratch / "page.log")
        started = time.perf_counter()
        proxies = [StdioProxy(env(f"machine{n}"), policy, machine=f"machine{n}", agent=f"agent{n}")
                   for n in range(args.proxies)]
        if not all(proxy.initialized(120) for proxy in proxies):
            raise SystemExit("a proxy did not start")
        print(f"{args.proxies} proxies up in {time.perf_counter() - started:.1f} s")
        per = args.calls // args.proxies
        ids = list(range(1, per + 1))
        texts: dict[str, tuple[int, int]] = {}
        for n, proxy in enumerate(proxies):
            for i in ids:
                texts[f"p{n}-{i}"] = (n, i)
                proxy.call(i, "echo", {"text": f"p{n}-{i}"})
        all_answered = lambda: all(proxy.wait_for(ids, 0) for proxy in proxies)  # noqa: E731
        run_started = time.perf_counter()
        lost = [0]
        if args.via == "page,cli":
            port = int(page.args[page.args.index("--port") + 1])
            people = [PagePerson(port, name, PASSWORD, secrets[name]) for name in names[:-1]]
            people.append(CliPerson(env("cli"), names[-1], team.new_token(names[-1])))
            _, errors = run_racers([(p, {"seed": k}) for k, p in enumerate(people[:-1])]
                                     + [(people[-1], {"newest_first": True, "first": True})], done=all_answered)
            if errors:
                raise SystemExit(f"an approver failed: {errors[0]!r}")
        else:
            stop = threading.Event()
            workers = [threading.Thread(target=store_approver, args=(f"approver{k}", stop, lost))
                       for k in range(args.approvers)]
            for worker in workers:
                worker.start()
            while not all_answered() and time.perf_counter() - run_started < 300:
                time.sleep(0.01)
            stop.set()
            for worker in workers:
                worker.join(30)
        elapsed = time.perf_counter() - run_started
        rows = {h.id: h for h in store.list_held(None, limit=100_000)}
        latencies = []
        for held in rows.values():
            n, i = texts[held.arguments["text"]]
            if held.decided_at is not None and i in proxies[n].wall:
                latencies.append((proxies[n].wall[i] - held.decided_at) * 1000)
        total = per * args.proxies
        by = collections.Counter(h.decided_by for h in rows.values())
        print(f"held calls: {total}, all answered: {all_answered()}, duplicates: {sum(len(p.duplicates) for p in proxies)}, "
              f"rows: {len(rows)}, decided: {sum(h.status in ('approved', 'denied') for h in rows.values())}, "
              f"by: {dict(by)}, {total / elapsed:.0f} decisions/s ({elapsed:.1f} s)")
        print(f"decision -> result at client: p50 {pct(latencies, .5):.1f} ms, p99 {pct(latencies, .99):.1f} ms, "
              f"max {max(latencies):.1f} ms (n={len(latencies)})")
        checked, problem = AuditLog(store).verify()
        print(f"audit verify: {checked} rows, {'OK' if problem is None else problem}")

        base = per + 1
        for n, proxy in enumerate(proxies):  # one held call each, then the kill switch from elsewhere
            proxy.call(base, "echo", {"text": f"k{n}"})
        deadline = time.monotonic() + 60
        while len(store.list_held("pending")) < args.proxies and time.monotonic() < deadline:
            time.sleep(0.01)
        at = time.perf_counter()
        if args.via == "page,cli":
            people[0].kill("bench")
        else:
            from signoff.approvals.broker import Broker
            from signoff.approvals.store_pg import PgStore

            Broker(PgStore(url)).kill("bench", by="carol")
        killed_at = time.perf_counter()
        for proxy in proxies:
            proxy.wait_for([base], 30)
        held_out = max(p.answers[base][0] for p in proxies) - at
        refused_after = []
        for proxy in proxies:  # allowed calls until one is refused
            request = base + 1
            while True:
                proxy.call(request, "cancelled_ids", {})
                proxy.wait_for([request], 30)
                if "kill" in answer_text(proxy.answer(request)):
                    refused_after.append(proxy.answers[request][0] - at)
                    break
                request += 1
        print(f"kill switch ({'page' if args.via == 'page,cli' else 'store'}, its request took "
              f"{(killed_at - at) * 1000:.0f} ms): every held call answered {held_out * 1000:.0f} ms after it was "
              f"asked; a new call refused on every proxy within {max(refused_after) * 1000:.0f} ms (asked one "
              "proxy after another: an upper bound)")
        print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        store.close()
    finally:
        for proxy in proxies:
            proxy.close()
        if page is not None:
            page.terminate()
            page.wait(timeout=30)
        server.remove()


if __name__ == "__main__":
    main()
