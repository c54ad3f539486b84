"""`signoff run`: turn command-line options into upstream specs and a gate, then serve.

Kept apart from cli.py so that the CLI stays a thin parser and the library can be driven
directly (tests, `signoff demo`).

SIGTERM, SIGINT and SIGHUP stop the proxy cleanly: its held calls become `abandoned` (nobody
can approve them any more), their waiting clients are told so while the channel is open, and the
process exits with 128 + the signal number.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import anyio

from signoff import logs
from signoff.config import IdentityStamp, command_name, identity_settings, load_config
from signoff.durations import parse_duration
from signoff.errors import ConfigError, SignoffError, StoreError
from signoff.gate import Gate, GateLoader
from signoff.relay.upstream import ServerSpec

log = logging.getLogger("signoff.run")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
ANSWER_GRACE = 2.0
"""At most this long after a stop signal for the held calls' answers to reach their clients."""


def server_specs(config: Any) -> list[ServerSpec]:
    """The enabled servers as upstream specs."""
    specs = []
    for name, server in config.servers.items():
        if server.disabled:
            continue
        transport = server.transport or ("stdio" if server.command else "http")
        if transport == "streamable-http":
            transport = "http"
        if server.url and transport == "http" and server.url.rstrip("/").endswith("/sse") and server.transport is None:
            transport = "sse"
        specs.append(
            ServerSpec(
                name=name,
                command=server.command,
                args=tuple(server.args),
                env=dict(server.env),
                cwd=server.cwd,
                url=server.url,
                headers=dict(server.headers),
                transport=transport,
                timeout=server.timeout,
                startup_timeout=server.startup_timeout,
                share=server.share,
            )
        )
    return specs


def resolve_servers(
    command: list[str], config_path: str | None, name: str | None, loaded: list[Any] | None = None
) -> tuple[list[ServerSpec], str | None]:
    """The upstreams to wrap and the policy named in the config file (if any); the loaded
    config is appended to `loaded` (its identity keys are read later)."""
    policy = None
    if config_path:
        config = load_config(config_path)
        if loaded is not None:
            loaded.append(config)
        policy = config.policy
        if config.store and not os.environ.get("SIGNOFF_STORE"):  # every open_store() here, and the CLI it starts
            os.environ["SIGNOFF_STORE"] = config.store
        specs = server_specs(config)
        if command:
            raise ConfigError("give either a command after `--` or --config with `servers:`, not both")
        if not specs:
            raise ConfigError("no enabled server in `servers:`; add one (command/args or url)", path=config_path)
        if name:
            raise ConfigError("--name applies to a single server given after `--`; name servers in the config file")
        return specs, policy
    if not command:
        raise ConfigError(
            "nothing to wrap: give a server command after `--` (e.g. `signoff run -- uvx mcp-server-time`) or --config"
        )
    return [ServerSpec(name=name or command_name(command), command=command[0], args=tuple(command[1:]))], policy


DEFAULT_POLICY = "balanced"


def catalog_ids(specs: list[ServerSpec]) -> dict[str, str]:
    """Each wrapped server's catalog id, recognised from its command or URL (the policy matches tools by it)."""
    try:
        from signoff.policy.catalog_load import load_catalog
    except ModuleNotFoundError as exc:
        if exc.name != "signoff.policy.catalog":
            raise
        return {}
    catalog = load_catalog()
    ids = {}
    for spec in specs:
        command = [spec.command, *spec.args] if spec.command else None
        found = catalog.identify(spec.name, command, spec.url)
        if found:
            ids[spec.name] = found
    return ids


def build_gate_factory(
    policy_source: str | None,
    *,
    observe: bool = False,
    tty: bool = False,
    notify: list[str] | None = None,
    desktop: bool = False,
    link: str | None = None,
    servers: dict[str, str] | None = None,
    names: tuple[str, ...] = (),
    brokers: list[Any] | None = None,
    identity: dict[str, str | None] | None = None,
) -> Callable[[], Gate]:
    """Load the policy now (a broken policy stops signoff before it serves anything) and open
    the shared store; every session's gate shares both. No policy means the balanced preset;
    `none` is the explicit pass-through."""
    from signoff.approvals.audit import AuditCounter
    from signoff.approvals.broker import Broker
    from signoff.approvals.gate import ApprovalGate
    from signoff.approvals.notify import Notifier
    from signoff.approvals.store import open_store, proxy_busy_timeout_ms
    from signoff.policy.engine import NO_POLICY, PolicyContext, load_policy
    from signoff.policy.reload import PolicyHolder
    from signoff.web.links import review_link

    if not policy_source:
        policy_source = DEFAULT_POLICY
        log.warning("no --policy given: using the %s preset (--policy none holds nothing)", DEFAULT_POLICY)
    if policy_source == NO_POLICY:
        log.warning("--policy none: every call is allowed (and audited)")
    interval = float(os.environ.get("SIGNOFF_POLICY_RELOAD_INTERVAL", "1"))
    try:
        broker = Broker(open_store(background_checkpoints=True, busy_timeout_ms=proxy_busy_timeout_ms()))
        for call in broker.mark_abandoned():
            log.warning("held call %s (%s) was abandoned by a proxy that stopped", call.id, call.qualified)
    except StoreError as exc:  # fail closed but keep serving: each call is refused with the reason
        load_policy(policy_source, context=PolicyContext(servers=dict(servers or {})))  # a broken policy still stops signoff
        log.error("%s; every call is refused until the store can be opened", exc)
        retry = functools.partial(
            build_gate_factory,
            policy_source,
            observe=observe,
            tty=tty,
            notify=notify,
            desktop=desktop,
            link=link,
            servers=servers,
            names=names,
            brokers=brokers,
            identity=identity,
        )
        return _store_down(str(exc), retry)
    if brokers is not None:
        brokers.append(broker)  # the signal handler closes its held calls
    context = PolicyContext(servers=dict(servers or {}), counter=AuditCounter(broker.store))
    noted: list[Broker] = []  # once the store is open, every policy (re)load is recorded for the page
    stamp = IdentityStamp(identity)

    def load_and_note(source: str) -> Any:
        policy = load_policy(source, context=context)
        if noted:
            note_proxy(noted[0], policy_source, policy.hash, names, stamp)
        return policy

    holder = PolicyHolder(policy_source, load_and_note, interval=interval)
    log.info("policy %s loaded (%s, %d rules)", policy_source, holder.policy.hash[:12], len(holder.policy.rules))
    note_proxy(broker, policy_source, holder.policy.hash, names, stamp)
    noted.append(broker)
    notifier = Notifier(notify or [], review=functools.partial(review_link, link) if link else None, desktop=desktop)
    team = team_mode(broker.store)
    if tty:
        _attach_terminal(broker, team)
    if observe:
        log.warning("observe mode: nothing is held; calls that would be held are recorded as `observed`")
    progress = float(os.environ.get("SIGNOFF_PROGRESS_INTERVAL", "10"))
    # team mode: no in-client dialog either (its user is the agent's, not a signed-in person)
    return lambda: ApprovalGate(
        holder, broker, observe=observe, notifier=notifier, progress_interval=progress, identity=stamp, elicit=not team
    )


def _store_down(error: str, retry: Callable[[], Callable[[], Gate]]) -> Callable[[], Gate]:
    """Sessions' gates while the store cannot be opened: each call is refused with `error`, and
    each tries to open the store again (`retry` builds the real factory once it can)."""
    from signoff.approvals.gate import StoreDownGate

    return lambda: StoreDownGate(error, lambda: retry()())


def _attach_terminal(broker: Any, team: bool) -> None:
    """`--tty`: prompt on the controlling terminal for the calls this process holds (not in team
    mode: a terminal cannot say which person decides)."""
    if team:
        log.warning(
            "team mode: --tty is off (a terminal cannot say which person decides); decide on the page "
            "or with `signoff approve --token`"
        )
        return
    from signoff.approvers.tty import TtyApprover

    approver = TtyApprover.open(broker)
    if approver is not None:
        approver.attach()


def team_mode(store: Any) -> bool:
    """Named approvers exist (`signoff user add`): only they decide, on the page or with a token.
    A store that cannot say counts as team mode (the self-approval channels stay off)."""
    from signoff.team.users import team_mode as people_exist

    try:
        return people_exist(store)
    except StoreError as exc:
        log.warning("cannot read the team's people (%s): the terminal and client dialogs stay off", exc)
        return True


def note_proxy(
    broker: Any, source: str | None, policy_hash: str, servers: tuple[str, ...], stamp: IdentityStamp | None = None
) -> None:
    """Tell the approval page which policy this proxy runs (file path or preset, and its hash)."""
    import socket

    from signoff.approvals.broker import pid_alive
    from signoff.policy.engine import PRESETS

    kind = "none" if not source else "preset" if source in PRESETS and not os.path.exists(source) else "file"
    label = os.path.abspath(source) if kind == "file" and source else (source or "")
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "source": label,
        "kind": kind,
        "hash": policy_hash,
        "servers": list(servers),
        "noted_at": time.time(),
        "lease": broker.lease_path(),
    }  # the Proxies view checks it (taken now, not at the first hold)
    if stamp is not None:  # the agent is known per session unless configured
        info.update(machine=stamp.machine, agent=stamp.agent or "", owner=stamp.owner)
    try:
        broker.store.note_proxy(info, pid_alive)
    except StoreError as exc:  # only the Policies page misses it
        log.warning("cannot record this proxy's policy for the approval page: %s", exc)


def parse_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--http expects HOST:PORT (e.g. 127.0.0.1:8931), got {value!r}")
    return host.strip("[]"), int(port)


def main(
    *,
    command: list[str],
    config_path: str | None = None,
    name: str | None = None,
    policy: str | None = None,
    http: str | None = None,
    timeout: str | None = None,
    log_level: str | None = None,
    observe: bool = False,
    tty: bool = False,
    notify: list[str] | None = None,
    desktop: bool = False,
    ui: bool = False,
    public_url: str | None = None,
    http_options: dict | None = None,
    identity: dict[str, str | None] | None = None,
) -> None:
    logs.setup(log_level)
    loaded: list[Any] = []
    specs, config_policy = resolve_servers(command, config_path, name, loaded)
    who = identity_settings(identity or {}, loaded[0] if loaded else None)
    specs = _with_timeout(specs, timeout)
    from signoff.approvals import filediff

    for spec in specs:  # where each server may touch files: the diff a held write would make is read there
        if spec.command:
            filediff.know_server(spec.name, [spec.command, *spec.args], spec.cwd)
    review_base = _start_page(policy or config_policy, public_url) if ui else public_url

    brokers: list[Any] = []

    def make_factory() -> Callable[[], Gate]:
        return build_gate_factory(
            policy or config_policy,
            observe=observe,
            tty=tty,
            notify=notify,
            desktop=desktop,
            link=review_base,
            servers=catalog_ids(specs),
            names=tuple(spec.name for spec in specs),
            brokers=brokers,
            identity=who,
        )

    loader = GateLoader(make_factory, thread=not tty)  # the policy loads while the server answers
    serve: Callable[[], Awaitable[None]]
    if http:
        host, port = parse_hostport(http)
        from signoff.serve.http import HttpDownstream
        from signoff.serve.http_guard import options_from_cli

        options, share = options_from_cli(host, http_options or {})
        if share:
            specs = [replace(spec, share=share) for spec in specs]
        downstream = HttpDownstream(specs, options=options, loader=loader)
        serve = lambda: downstream.serve(host, port)  # noqa: E731
    else:
        from signoff.serve.stdio import check_stdio, serve_stdio

        check_stdio()
        out_fd = logs.protect_stdout()
        serve = lambda: serve_stdio(specs, loader, out_fd=out_fd)  # noqa: E731
    try:
        stopped = anyio.run(serve_until_signal, serve, brokers)
    except BaseExceptionGroup as group:
        raise _sole_signoff_error(group) from None
    if stopped is not None:
        raise SystemExit(128 + stopped)


def _with_timeout(specs: list[ServerSpec], timeout: str | None) -> list[ServerSpec]:
    """`--timeout`: the longest wait for every wrapped server's answer."""
    if not timeout:
        return specs
    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--timeout") from None
    return [replace(spec, timeout=seconds) for spec in specs]


def _start_page(policy: str | None, public_url: str | None) -> str | None:
    """`--ui`: the approval page in the background (if none runs); the base its review links use."""
    from signoff.web.server import ensure_running

    link = ensure_running(policy=policy, public_url=public_url)
    log.warning("approval page: %s (its link with the secret token: `signoff ui --link`)", link.split("?")[0])
    return public_url or link.split("?")[0]


async def serve_until_signal(serve: Callable[[], Awaitable[None]], brokers: list[Any]) -> int | None:
    """Serve until the client leaves (None) or a stop signal arrives (its number)."""
    stopped: list[int] = []
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                async for signum in signals:
                    stopped.append(signum)
                    await stop_holding(brokers, signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(on_signal)
        await serve()
        tg.cancel_scope.cancel()
    for broker in brokers:
        broker.release()
    return stopped[0] if stopped else None


async def stop_holding(brokers: list[Any], name: str) -> None:
    """Abandon this process's held calls, and give their clients a moment to get the answer."""
    why = f"signoff was stopped ({name})"
    for broker in brokers:
        broker.stopping = why
        try:
            closed = await anyio.to_thread.run_sync(broker.abandon_own, why)
        except SignoffError as exc:
            log.error("%s: cannot mark the held calls abandoned: %s", why, exc)
            continue
        log.warning("%s: %d held call(s) abandoned", why, len(closed))
    with anyio.move_on_after(ANSWER_GRACE):
        while any(broker.holding for broker in brokers):
            await anyio.sleep(0.02)
        await anyio.sleep(0.1)  # the proxy writes each refusal right after its hold returns


def _sole_signoff_error(group: BaseExceptionGroup) -> BaseException:
    """A task group wraps errors; a single SignoffError is reported as itself (one clean line)."""
    errors: BaseException = group
    while isinstance(errors, BaseExceptionGroup) and len(errors.exceptions) == 1:
        errors = errors.exceptions[0]
    return errors if isinstance(errors, SignoffError) else group
