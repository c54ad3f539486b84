"""`signoff.yaml`: which servers signoff wraps, and with which policy.

The `servers:` section has the shape of the `mcpServers` entries AI clients already use
(command, args, env, cwd; or url and headers), so an existing client config can be pasted in;
`mcpServers:` is accepted as a synonym. Errors name the file, line and field.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from signoff.durations import parse_duration  # also imported from here by older callers
from signoff.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@functools.cache
def _models() -> Any:
    """The file's pydantic models (ServerConfig, SignoffConfig), built on first use: serving a
    command given after `--` never pays for them (schema building and pydantic's plugin scan,
    ~20 ms of start-up)."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

    class ServerConfig(BaseModel):
        """One wrapped server, as in an AI client's `mcpServers` entry."""

        model_config = ConfigDict(extra="forbid")

        command: str | None = None
        args: list[str] = Field(default_factory=list)
        env: dict[str, str] = Field(default_factory=dict)
        cwd: str | None = None
        url: str | None = None
        headers: dict[str, str] = Field(default_factory=dict)
        transport: Literal["stdio", "http", "streamable-http", "sse"] | None = Field(default=None, alias="type")
        timeout: float = 300.0
        startup_timeout: float = 60.0
        share: Literal["auto", "session", "shared"] = "auto"
        disabled: bool = False

        @field_validator("timeout", "startup_timeout", mode="before")
        @classmethod
        def _duration(cls, value: Any) -> float:
            return parse_duration(value)

        @field_validator("env", "headers", mode="before")
        @classmethod
        def _strings(cls, value: Any) -> Any:
            if isinstance(value, dict):
                return {str(k): "" if v is None else str(v) for k, v in value.items()}
            return value

        @model_validator(mode="after")
        def _one_target(self) -> ServerConfig:
            if bool(self.command) == bool(self.url):
                raise ValueError("give either `command` (a stdio server) or `url` (an HTTP server), not both or neither")
            return self

    class SignoffConfig(BaseModel):
        """The whole file."""

        model_config = ConfigDict(extra="forbid", populate_by_name=True)

        servers: dict[str, ServerConfig] = Field(default_factory=dict)
        policy: str | None = None
        log_level: str | None = None
        store: str | None = None
        """Where the shared store is (SIGNOFF_STORE overrides it): a `postgresql://…` URL (team mode) or a SQLite file."""
        machine: str | None = None
        """This machine's name in the queue and the audit trail (default: the hostname)."""
        agent: str | None = None
        """The agent's name (default: what the client calls itself in `initialize`)."""
        owner: str | None = None
        """The person whose agent this is (rules with `not_self: true` keep them from approving it)."""

        @field_validator("machine", "agent", "owner")
        @classmethod
        def _identity_name(cls, value: str | None) -> str | None:
            return None if value is None else check_identity_name(value)

        @model_validator(mode="before")
        @classmethod
        def _mcp_servers_alias(cls, data: Any) -> Any:
            if isinstance(data, dict) and "mcpServers" in data:
                data = dict(data)
                if "servers" in data:
                    raise ValueError("use either `servers:` or `mcpServers:`, not both")
                data["servers"] = data.pop("mcpServers")
            return data

    return SimpleNamespace(ServerConfig=ServerConfig, SignoffConfig=SignoffConfig)


_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
IDENTITY_SOURCES = {"machine": "SIGNOFF_MACHINE", "agent": "SIGNOFF_AGENT", "owner": "SIGNOFF_OWNER"}
CLIENT_AGENT_CHARS = 64


def check_identity_name(value: str) -> str:
    if not _IDENTITY.match(value):
        raise ValueError(f"{value!r}: use up to 64 letters, digits and . _ @ + - (starting with a letter or digit)")
    return value


def identity_settings(flags: dict[str, str | None], config: Any = None) -> dict[str, str | None]:
    """machine, agent and owner as configured: `--flag`, else SIGNOFF_MACHINE/AGENT/OWNER, else
    signoff.yaml; None where nothing is set (the machine then is the hostname, the agent the
    client's own name). Raises ConfigError naming where a bad value came from."""
    out: dict[str, str | None] = {}
    for key, variable in IDENTITY_SOURCES.items():
        for where, value in (
            (f"--{key}", flags.get(key)),
            (variable, os.environ.get(variable)),
            (f"signoff.yaml {key}", getattr(config, key, None)),
        ):
            if value:
                try:
                    out[key] = check_identity_name(value.strip())
                except ValueError as exc:
                    raise ConfigError(str(exc), field=where) from None
                break
        else:
            out[key] = None
    return out


def client_agent_name(client: str) -> str:
    """The agent name a client gives itself (`clientInfo.name`), made safe to show and compare:
    one line, no control or bidi characters, at most 64 characters. Only signoff's own setting
    (`--agent`) cannot be chosen by the client."""
    from signoff.termsafe import one_line

    return one_line(client.strip(), CLIENT_AGENT_CHARS) or "unnamed client"


class IdentityStamp:
    """Stamps each call with who made it (model.Identity), from signoff's settings only: the
    configured machine (else the hostname), agent (else the client's own name) and owner."""

    def __init__(self, settings: dict[str, str | None] | None = None):
        import socket

        settings = settings or {}
        self.machine = settings.get("machine") or socket.gethostname()
        self.agent = settings.get("agent")
        self.owner = settings.get("owner") or ""
        self._by_client: dict[str, Any] = {}

    def identity(self, client: str) -> Any:
        from signoff.model import Identity

        found = self._by_client.get(client)
        if found is None:
            found = Identity(self.machine, self.agent or client_agent_name(client), self.owner)
            if len(self._by_client) > 256:  # client names come from clients: keep the cache small
                self._by_client.clear()
            self._by_client[client] = found
        return found

    def __call__(self, call: Any) -> Any:
        from dataclasses import replace

        return call if call.identity is not None else replace(call, identity=self.identity(call.client))


def load_config(path: str | os.PathLike[str]) -> Any:
    """Read and validate a signoff.yaml; raises ConfigError naming file:line: field."""
    from signoff import yamlsrc

    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", path=source) from None
    data, locator = yamlsrc.load_yaml(text, source=source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a mapping with a `servers:` section", path=source, line=1)
    for key in ("servers", "mcpServers"):
        section = data.get(key)
        for name in section if isinstance(section, dict) else ():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(
                    f"server name {name!r} may use only letters, digits, '_' and '-' (it prefixes tool names); rename it",
                    path=source,
                    line=locator.line_of((key, name)),
                    field=f"{key}.{name}",
                )
    from pydantic import ValidationError

    model = _models().SignoffConfig
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        yamlsrc.raise_validation_error(exc, locator, source, ConfigError, model)
        raise  # unreachable: raise_validation_error always raises
    if config.policy and not os.path.isabs(config.policy) and ("/" in config.policy or config.policy.endswith((".yaml", ".yml"))):
        config.policy = str(Path(path).resolve().parent / config.policy)
    if config.store and "://" not in config.store and not os.path.isabs(config.store):  # a SQLite file beside it
        config.store = str(Path(path).resolve().parent / config.store)
    return config


def default_name(command: str) -> str:
    """A command's basename as a server name, without the usual `mcp-server-` decoration.

    `mcp-server-git` and `uvx mcp-server-git` both give `git`, so the policy examples'
    `git.git_commit` matches however the server is launched.
    """
    base = os.path.basename(command)
    base = re.sub(r"\.(exe|cmd|bat|py|js|mjs)$", "", base)
    base = re.sub(r"^(mcp[-_]server[-_]|server[-_])", "", base)
    base = re.sub(r"[-_](mcp[-_]server|mcp)$", "", base)
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-")
    return cleaned or "server"


_LAUNCHERS = {"npx", "uvx", "pipx", "bunx", "pnpx", "node", "python", "python3", "uv", "deno", "bun"}
_LAUNCHER_WORDS = {"run", "-y", "--yes", "-m", "tool", "--from"}


def command_name(argv: list[str]) -> str:
    """Name for `signoff run -- COMMAND ...`: the package for launchers like npx/uvx, else the command."""
    if not argv:
        return "server"
    if os.path.basename(argv[0]) in _LAUNCHERS:
        for arg in argv[1:]:
            if not arg.startswith("-") and arg not in _LAUNCHER_WORDS:
                return default_name(_script_name(arg))
    return default_name(argv[0])


def _script_name(arg: str) -> str:
    """`@scope/server-x@1.2` → `server-x`; `.../server-x/dist/index.js` → `server-x`."""
    parts = [p for p in arg.replace("\\", "/").split("/") if p]
    if not parts:
        return arg
    stem = os.path.splitext(parts[-1])[0]
    if stem in _ENTRY_STEMS:
        for part in reversed(parts[:-1]):
            if part not in _BUILD_DIRS:
                return part.split("@")[0]
    return parts[-1].split("@")[0] or parts[-1]


_ENTRY_STEMS = {"index", "main", "server", "cli", "__main__", "app"}
_BUILD_DIRS = {"dist", "build", "src", "lib", "out", "bin"}
