"""One error hierarchy for signoff, so callers catch what they can act on.

SignoffError                 base; `str(err)` is a one-line message for a human
├── ConfigError              a config or policy file is wrong: says file:line: field: what to do
│   └── PolicyError          the policy file specifically (bad rule, bad CEL, bad glob)
├── UpstreamError            a wrapped server failed: could not start, crashed, hung
│   ├── UpstreamStartError   the process could not be started or refused the handshake
│   ├── UpstreamCrashed      the process exited while calls were in flight
│   └── UpstreamTimeout      no answer within the configured bound
├── StoreError               the shared SQLite store could not be read or written
└── DecisionError            a decision could not be recorded
    ├── UnknownCallError     no held call with that id
    ├── AlreadyDecidedError  the first decision already won
    │   └── CallGoneError    nobody waits for the call any more (client or proxy gone)
    └── VoteRefusedError     team mode: a vote that cannot count (role, not_self, already approved)
"""

from __future__ import annotations


class SignoffError(Exception):
    """Base of every error signoff raises on purpose."""


class ConfigError(SignoffError):
    """A configuration file is invalid; the message names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None):
        self.path = path
        self.line = line
        self.field = field
        self.detail = message
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        if field:
            where += f"{field}: "
        super().__init__(f"{where}{message}")


class PolicyError(ConfigError):
    """The policy file is invalid (bad YAML, unknown key, bad CEL, bad glob)."""


class UpstreamError(SignoffError):
    """A wrapped MCP server failed; carries its name and the tail of its stderr."""

    def __init__(self, message: str, *, server: str = "", stderr_tail: str = ""):
        self.server = server
        self.stderr_tail = stderr_tail
        text = message
        if stderr_tail:
            text += f"\n--- last stderr lines of {server or 'upstream'} ---\n{stderr_tail}"
        super().__init__(text)


class UpstreamStartError(UpstreamError):
    """The upstream could not be started or did not complete its handshake."""


class UpstreamCrashed(UpstreamError):
    """The upstream process exited."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within its bound."""


class StoreError(SignoffError):
    """The shared store could not be opened, migrated, read or written."""


class TeamError(SignoffError):
    """Team mode: an unknown or duplicate person, a bad role, a refused sign-in or token."""


class DecisionError(SignoffError):
    """A decision on a held call could not be applied."""


class UnknownCallError(DecisionError):
    """No held call has that id."""


class AlreadyDecidedError(DecisionError):
    """The held call was already decided; the first decision wins."""


class CallGoneError(AlreadyDecidedError):
    """The held call can no longer be decided: its client stopped waiting or its proxy is gone."""


class VoteRefusedError(DecisionError):
    """Team mode: a person's vote on a held call did not count (role, not_self, already approved)."""
