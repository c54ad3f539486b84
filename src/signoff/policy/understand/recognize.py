"""Which actions a call performs, and the facts behind that: the catalog first, names second.

Per tool (cached by the policy): a `Profile` from the catalog entry of the wrapped server (its
actions, whether it only reads, which argument paths carry recipients, amounts, SQL, URLs,
commands...) or, for tools the catalog does not know, from the tool's name and annotations.
Per call: an `Understanding` that reads the arguments those paths point at, lazily: shell
commands (bashlex), SQL (sqlglot), URLs (ada-url), recipients and amounts. What cannot be read
is answered the cautious way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from signoff.policy.understand import money, recipients, shell, urls
from signoff.policy.understand import sql as sqlmod
from signoff.policy.understand.arguments import (
    ROLE_KEYS,
    SQL_ONLY_KEYS,
    flat,
    nested_items,
    pairs,
    path_parts,
    sql_texts,
    values_at,
    whole_url_host,
)
from signoff.policy.understand.names import CLI_NAMES, DELETE_VERBS, STRONG, WRITE_VERBS, name_tokens
from signoff.policy.understand.profile import ALL_ACTIONS, IMPLIES, UNKNOWN, VOCABULARY, Profile, expand, profile
from signoff.policy.understand.recipients import Recipient

__all__ = ["ALL_ACTIONS", "IMPLIES", "UNKNOWN", "VOCABULARY", "Profile", "Understanding", "expand", "profile"]

API_READ_METHODS = frozenset(
    "get head options list retrieve search read find describe query lookup fetch batch_retrieve count".split()
)
NAVIGATE_WORDS = frozenset("navigate goto open visit browse fetch scrape crawl extract download get read map".split())
METADATA_WORDS = frozenset("info stat stats metadata exists size list tree directory directories search".split())
FIELD_LIST_KEYS = frozenset("projection fields columns select attributes attributestoget include".split())
PATH_LIKE = re.compile(r"^[^\s]*[/~][^\s]*$|^\.[^\s/]+$")
"""A value that looks like a path (no spaces; a slash, a tilde, or a dotfile): `config/secrets.yml`, `.env`."""
NOSQL_WRITE_STAGES = frozenset({"$out", "$merge"})
DRY_RUN_KEYS = ("dryRun", "dry_run", "dryrun", "validate_only", "validateOnly", "preview")
DRY_RUN_SET = frozenset(DRY_RUN_KEYS)


class Understanding:
    """One call, read through its tool's profile. Every property is computed at most once."""

    def __init__(
        self, profile: Profile, server: str, tool: str, arguments: Mapping[str, Any], schema: Mapping[str, Any] | None = None
    ):
        self.profile = profile
        self.server = server
        self.tool = tool
        self.arguments = arguments if isinstance(arguments, Mapping) else {}
        self.schema = schema
        self._cache: dict[str, Any] = {}
        self._roles: dict[str, list[Any]] = {}
        self._actions_found: frozenset[str] | None = None
        self._recipients_found: list[recipients.Recipient] | None = None
        self.api_read = False
        self._api_read: bool | None = None
        self.notes: list[str] = []
        """Phrases for the reason: "rm -rf build/ deletes files"."""

    def _once(self, key: str, compute: Any) -> Any:
        found = self._cache.get(key, self)
        if found is self:
            found = self._cache[key] = compute()
        return found

    # ------------------------------------------------------------------ argument values by role

    def role(self, name: str) -> list[Any]:
        """Values of one role: the catalog's paths, or (for tools it does not know) arguments named for it."""
        found = self._roles.get(name)
        if found is None:
            found = self._roles[name] = self._role(name)
        return found

    def _role(self, name: str) -> list[Any]:
        paths = self.profile.fields.get(name)
        if paths is not None:
            arguments = self.arguments
            out: list[Any] = []
            for path in paths:
                parts = path_parts(path)
                if len(parts) == 1 and not parts[0][1]:
                    if parts[0][0] in arguments:
                        out.append(arguments[parts[0][0]])
                else:
                    out.extend(values_at(arguments, path))
            return out
        if self.profile.catalogued and name not in ("recipient", "amount", "currency"):
            return []
        keys = ROLE_KEYS.get(name)
        if not keys:
            return []
        found = [v for k, v in self.arguments.items() if str(k).lower() in keys]
        if not found and name in ("recipient", "amount", "currency"):
            found = [v for k, v in nested_items(self.arguments) if str(k).lower() in keys]
        return found

    def pairs(self) -> list[tuple[str, Any]]:
        return self._once("pairs", lambda: pairs(self.arguments))

    # ------------------------------------------------------------------ what the arguments say

    def commands(self) -> list[shell.ShellAnalysis]:
        return self._once("commands", self._commands)

    def _commands(self) -> list[shell.ShellAnalysis]:
        prof = self.profile
        if prof.catalogued and "shell" not in prof.actions and "command" not in prof.fields:
            return []
        tokens = name_tokens(self.tool)
        cli = next((t for t in tokens + name_tokens(self.server) if t in CLI_NAMES), None)
        has_command = any(str(k).lower() in ROLE_KEYS["command"] for k in self.arguments)
        if not (
            "shell" in prof.actions
            or "command" in prof.fields
            or (not prof.catalogued and has_command and not self._redis_command())
        ):
            return []  # a database tool's `command: FLUSHALL` is a Redis command, read by nosql_ops
        out: list[shell.ShellAnalysis] = []
        for value in self.role("command"):
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                if any(" " in v.strip() for v in value):  # a list of command lines
                    out.extend(shell.analyze(v) for v in value)
                    continue
                import shlex

                value = shlex.join(value)  # an argv list
            if isinstance(value, str) and cli and value.strip() and " " not in value.strip() and not prof.catalogued:
                # `kubectl_generic(command="delete", resourceType="secret", name="x")`: the CLI's own words
                words = [cli, value.strip()] + [
                    v
                    for k, v in self.arguments.items()
                    if isinstance(v, str) and str(k).lower() not in ROLE_KEYS["command"] and " " not in v
                ]
                out.append(shell.analyze(" ".join(words)))
            elif isinstance(value, str):
                out.append(shell.analyze(value))
            elif value is not None:
                bad = shell.ShellAnalysis(unparseable="the command is not text")
                bad.actions |= shell.EVERY_ACTION
                out.append(bad)
        return out

    def cli_commands(self) -> list[shell.ShellAnalysis]:
        """A tool named for a CLI (`kubectl_get(resourceType="secrets", name="db")`), read as the command
        line it stands for. It adds to what the name says; it never clears it."""
        prof = self.profile
        if prof.catalogued:
            return []
        tokens = name_tokens(self.tool)
        cli = next((t for t in tokens if t in CLI_NAMES), None)
        if prof.catalogued or cli is None or any(str(k).lower() in ROLE_KEYS["command"] for k in self.arguments):
            return []
        verb = list(tokens[tokens.index(cli) + 1 :]) or [t for t in tokens if t != cli][:1]
        words = [cli, *verb] + [v for v in self.arguments.values() if isinstance(v, str) and v.strip() and " " not in v]
        return [shell.analyze(" ".join(words))] if verb else []

    def sql(self) -> sqlmod.SqlTouch:
        return self._once("sql", self._sql)

    def _sql(self) -> sqlmod.SqlTouch:
        texts: list[str] = []
        if "sql" in self.profile.fields:
            texts = [v for v in self.role("sql") if isinstance(v, str)]
            bad = [v for v in self.role("sql") if not isinstance(v, str) and v is not None]
            if bad:
                return sqlmod.SqlTouch(sqlmod.ALL_TABLES, True, 1, True, "the SQL argument is not text")
        elif not self.profile.catalogued and self._looks_like_database():
            texts = sql_texts(self.arguments)
        texts += [t for a in self.commands() for t in a.sql]
        return sqlmod.analyze(texts)

    def _looks_like_database(self) -> bool:
        return self.profile.database or any(SQL_ONLY_KEYS.search(str(k)) for k in self.arguments)

    def tables(self) -> frozenset[str]:
        """Tables/collections touched: SQL, shell database commands, table/collection arguments."""
        return self._once("tables", self._tables)

    def _tables(self) -> frozenset[str]:
        touch = self.sql()
        found = set(touch.tables)
        for a in self.commands():
            found |= a.tables
        for role in ("table", "collection"):
            for value in self.role(role):
                if isinstance(value, str) and value.strip():
                    found.add(value.strip().lower())
                elif isinstance(value, (list, tuple)):
                    found |= {v.strip().lower() for v in value if isinstance(v, str) and v.strip()}
        return frozenset(found)

    def hosts(self) -> frozenset[str]:
        """Every host named by a URL in any argument, a url/host-like argument, or a shell command."""
        return self._once("hosts", self._hosts)

    def _hosts(self) -> frozenset[str]:
        found: set[str] = set()
        for key, text in self.pairs():
            if not isinstance(text, str):
                continue
            found |= urls.hosts_in_text(text)
            if key.lower() in urls.HOST_KEYS:
                host = urls.host_of_value(text)
                if host:
                    found.add(host)
        for role in ("url", "host"):
            for value in self.role(role) if self.profile.catalogued else ():
                if isinstance(value, str):
                    host = urls.host_of_value(value)
                    if host:
                        found.add(host)
                elif value is not None:
                    found.add(urls.UNPARSEABLE)
        for a in self.commands():
            found |= a.hosts
        if self.profile.hosts and "api_call" in self.actions() and not self.api_is_read():
            found.update(self.profile.hosts)  # the server's own API, for what it changes (its reads stay unremarkable)
        return frozenset(found)

    def url_arguments(self) -> frozenset[str]:
        """Hosts of argument values that *are* a URL or a host (not text that mentions one)."""
        return self._once(
            "url_args", lambda: frozenset(h for k, t in self.pairs() if isinstance(t, str) and (h := whole_url_host(k, t)))
        )

    def recipients(self) -> list[recipients.Recipient]:
        if self._recipients_found is None:
            self._recipients_found = self._recipients()
        return self._recipients_found

    def _recipients(self) -> list[Recipient]:
        values = self.role("recipient")
        found = [r for v in values for r in recipients.collect(v)]
        for a in self.commands():
            found += [recipients.parse_address(t) for t in a.recipients]
        if not found and not values and not self.profile.catalogued:
            found = recipients.in_text(t for _, t in self.pairs() if isinstance(t, str))
        return found

    def amount(self) -> money.Amount | None:
        """The amount in major units, or None when there is none that can be read."""
        return self._once("amount", self._amount)

    def _amount(self) -> money.Amount | None:
        values = self.role("amount")
        currency = next((c for c in self.role("currency") if isinstance(c, str)), None) or self.profile.currency
        if not values:
            return None
        if len(values) == 1:
            return money.parse(values[0], unit=self.profile.amount_unit, currency=currency)
        return money.total(values, unit=self.profile.amount_unit, currency=currency)

    def sensitive_paths(self) -> list[str]:
        """Credential files among the paths, when the tool reads contents (not `get_file_info`, `list_directory`)."""
        if set(name_tokens(self.tool)) & METADATA_WORDS:
            return []
        return self._once("sensitive", self._sensitive_paths)

    def _sensitive_paths(self) -> list[str]:
        values = flat(self.role("path"))
        if self.profile.reads or (self.profile.catalogued and not self.profile.actions):
            values += [
                v for v in self.arguments.values() if isinstance(v, str) and PATH_LIKE.match(v)
            ]  # `HEAD:config/secrets.yml`
        return [v for v in values if shell.SENSITIVE_PATHS.search(v)]

    def nosql_writes(self) -> list[str]:
        """Aggregation stages that write (`$out`, `$merge`) even in a tool its server calls read-only."""
        prof = self.profile
        if not (prof.database or {"collection", "table"} & set(prof.fields)):
            return []
        return self._once(
            "nosql", lambda: sorted({str(k) for k, _ in nested_items(self.arguments) if str(k) in NOSQL_WRITE_STAGES})
        )

    def nosql_ops(self) -> list[tuple[str, str]]:
        """DynamoDB operations (`PutItem`, `DeleteItem`) and Redis commands (`SET`, `DEL`, `FLUSHALL`) named
        in the arguments of a database tool the catalog does not know: (write|delete, what)."""
        prof = self.profile
        if prof.catalogued or not prof.database:
            return []
        found = []
        for key, value in self.arguments.items():
            if not isinstance(value, str) or not value.strip():
                continue
            op = value.strip().lower()
            if op in sqlmod.DYNAMO_DELETES or op in sqlmod.DYNAMO_WRITES:
                found.append(("delete" if op in sqlmod.DYNAMO_DELETES else "write", value.strip()))
            elif op in sqlmod.DYNAMO_READS:
                found.append(("read", value.strip()))
            elif (
                str(key).lower() in ROLE_KEYS["command"] | {"operation", "op"}
                and value.split()[0].upper() in sqlmod.REDIS_COMMANDS
            ):
                found.append((sqlmod.redis_op(value.split()), value.split()[0]))
        return found

    def _redis_command(self) -> bool:
        return self.profile.database and any(
            isinstance(v, str) and v.split() and v.split()[0].upper() in sqlmod.REDIS_COMMANDS
            for k, v in self.arguments.items()
            if str(k).lower() in ROLE_KEYS["command"]
        )

    def pii_fields(self) -> list[str]:
        """Columns or fields holding personal data or secrets that a database read asks for (a projection)."""
        prof = self.profile
        if not (prof.database or {"collection", "table", "sql"} & set(prof.fields)):
            return []
        found = [str(k) for k, v in nested_items(self.arguments) if sqlmod.PII.match(str(k)) and v not in (0, False, None)]
        found += [
            v
            for k, v in nested_items(self.arguments)
            if isinstance(v, str) and str(k).lower() in FIELD_LIST_KEYS and sqlmod.PII.match(v)
        ]
        for k, v in nested_items(self.arguments):
            if str(k).lower() in FIELD_LIST_KEYS and isinstance(v, (list, tuple)):
                found += [x for x in v if isinstance(x, str) and sqlmod.PII.match(x)]
        return found

    def dry_run(self) -> bool:
        """`dryRun: true` counts only when the tool declares that argument (its schema, or the
        catalog's record of its arguments); otherwise the server may ignore it."""
        props = (self.schema or {}).get("properties") if isinstance(self.schema, Mapping) else None
        declared = set(props) if isinstance(props, Mapping) else set()
        declared |= self.profile.arguments
        return any(self.arguments.get(k) is True and k in declared for k in DRY_RUN_KEYS)

    # ------------------------------------------------------------------ the actions

    def actions(self) -> frozenset[str]:
        if self._actions_found is None:
            self._actions_found = self._actions()
        return self._actions_found

    def _actions(self) -> frozenset[str]:
        prof = self.profile
        if prof.static and self.schema is None and not prof.arguments & DRY_RUN_SET:  # nothing in the arguments can change it
            return prof.actions
        found = set(prof.actions)
        if self.dry_run():
            self.notes.append("a dry run: nothing changes")
            return frozenset()
        commands = self.commands()
        if commands:  # what the command line does replaces what the tool may do
            found = set()
            for a in commands:
                found |= a.actions
                self.notes.extend((a.unparseable and [f"{a.unparseable}: counts as every action"]) or a.what)
                if a.actions - {"api_call", "sensitive_read"} or (a.method not in ("", "GET", "HEAD")):
                    found.add("shell")  # a command line that changes something is a shell action too
        elif "shell" in found:
            self.notes.append("runs a command signoff could not find in the arguments")
        for a in self.cli_commands():
            found |= a.actions - {"shell"}
            self.notes.extend(a.what[:1])
        touch = self.sql()
        self._from_sql(found, touch)
        if "method" in prof.fields and prof.catalogued and not commands and not prof.reads:
            found = self._by_method(found)
        if not prof.catalogued and not prof.reads and self.url_arguments():
            found.add("api_call")
        self._from_nosql(found)
        if self.pii_fields() and (prof.reads or not found - {"api_call"}):
            found.add("sensitive_read")
            self.notes.append(f"reads personal data or secrets ({', '.join(sorted(set(self.pii_fields()))[:3])})")
        if (prof.reads or not found - {"api_call"}) and self.sensitive_paths():
            found.add("sensitive_read")
            self.notes.append(f"reads {self.sensitive_paths()[0]} (credentials)")
        if (
            prof.catalogued
            and not found & {"send_email", "send_message"}
            and not prof.reads
            and "draft" not in name_tokens(self.tool)
            and any(r.address for r in self.recipients())
        ):
            found.add("send_email")  # a filter that forwards, an invite: mail goes to these addresses
        if (
            found.isdisjoint(("file_delete", "database_delete"))
            and not commands
            and not touch.statements
            and set(name_tokens(self.tool)) & DELETE_VERBS
            and (prof.destructive or not prof.catalogued)
            and not prof.reads
        ):
            found.add("file_delete")  # a deletion of something the vocabulary has no word for (a repository, a monitor)
        if not found and not prof.catalogued and not prof.reads and not commands and not touch.statements:
            if set(name_tokens(self.tool)) & WRITE_VERBS and prof.open_world:
                found.add("api_call")  # `create_team`, `update_issue` on a remote service: a request that changes something
            else:
                found.add(UNKNOWN)
        return frozenset(found)

    def _from_sql(self, found: set[str], touch: Any) -> None:
        """SQL in the arguments: what the statements do replaces what the tool's name suggests."""
        if not touch.statements:
            return
        if "sql" in self.profile.fields or not self.profile.catalogued:
            found.difference_update({"database_write", "database_delete"})
        if touch.writes:
            found.add("database_write")
            if touch.deletes:
                found.add("database_delete")
            tables = ", ".join(sorted(touch.tables)) or "the database"
            self.notes.append(touch.why or ("deletes from " if touch.deletes else "writes to ") + tables)
        if touch.pii:
            found.add("sensitive_read")
            self.notes.append(f"reads personal data ({', '.join(sorted(touch.pii))})")

    def _from_nosql(self, found: set[str]) -> None:
        """NoSQL operations in the arguments: what they do replaces what the tool's name suggests."""
        ops = self.nosql_ops()
        if ops:
            found.difference_update({"database_write", "database_delete"})
        for kind, what in ops:
            if kind == "read":
                continue
            found.add("database_write")
            if kind == "delete":
                found.add("database_delete")
            self.notes.append(f"{what} {'deletes' if kind == 'delete' else 'writes'} data")
        if self.nosql_writes():
            found.add("database_write")
            self.notes.append(f"writes a collection ({', '.join(self.nosql_writes())})")

    def _by_method(self, found: set[str]) -> set[str]:
        """A generic API tool (`make_api_request(service, method, request)`): the method decides."""
        methods = [m for m in self.role("method") if isinstance(m, str)]
        if not methods:
            return found
        words = set()
        for m in methods:
            words |= set(name_tokens(m))
        for value in self.arguments.values():
            if isinstance(value, str) and len(value) < 64:
                words |= set(name_tokens(value))
        first = name_tokens(methods[0])[:1]
        if (
            first
            and first[0] in API_READ_METHODS
            and not words & DELETE_VERBS
            and not any(set(name_tokens(m)) & WRITE_VERBS - API_READ_METHODS for m in methods)
        ):
            self.api_read = True
            return found & {"api_call"}
        kept = {"api_call"} | {a for a in found if a not in ("payment", "refund", "purchase")}
        if "refund" in found and words & {"refund", "refunds"}:
            kept.add("refund")
        elif "payment" in found and words & {"payment", "payments", "charge", "charges", "pay"}:
            kept.add("payment")
        elif "purchase" in found and words & {"order", "orders", "checkout", "purchase"}:
            kept.add("purchase")
        if words & DELETE_VERBS:
            kept.add("file_delete")
        return kept

    def api_is_read(self) -> bool:
        """An HTTP call that only reads: a GET-like method, a read-only tool, or navigating to a page."""
        if self._api_read is None:
            self.actions()
            prof = self.profile
            if self.api_read:
                self._api_read = True
            elif any(a.hosts and a.actions == {"api_call"} for a in self.commands()):
                self._api_read = all(a.method in ("GET", "HEAD") for a in self.commands() if "api_call" in a.actions)
            elif prof.reads:
                self._api_read = True
            elif "method" in prof.fields:
                self._api_read = False
            else:
                words = set(name_tokens(self.tool))
                self._api_read = bool(words & NAVIGATE_WORDS) and not words & (STRONG | WRITE_VERBS)
        return self._api_read

    def external_actions(self) -> frozenset[str]:
        """The actions that count as acting on the world: an API call that only reads does not."""
        actions = self.actions()
        if "api_call" in actions and self.api_is_read():
            return actions - {"api_call"}
        return actions

    def destructive(self) -> bool:
        """Declared (catalog or annotations) or recognised (rm -rf, DROP, git push --force); what the
        arguments say wins for shell and SQL tools (`ls` through a destructive-declared shell is not)."""
        return self._once("destructive", self._destructive)

    def _destructive(self) -> bool:
        if self.dry_run():
            return False
        commands = self.commands()
        if commands:
            return any(a.destructive for a in commands)
        if (
            any(a.destructive for a in self.cli_commands())
            or self.nosql_writes()
            or any(kind == "delete" for kind, _ in self.nosql_ops())
        ):
            return True
        touch = self.sql()
        if touch.statements and ("sql" in self.profile.fields or not self.profile.catalogued):
            return touch.deletes or touch.overwrites
        if "method" in self.profile.fields and self.profile.catalogued:
            return "file_delete" in self.actions()
        return self.profile.destructive
