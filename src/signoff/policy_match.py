"""What the policy engine looks for in a call: tool-name meanings, addresses, hosts, SQL tables.

Pure functions over a call's names and arguments. Anything that cannot be read for certain is
answered the cautious way (an unparseable SQL statement touches every table and writes; a call
with no recognisable recipient is treated as external), because a policy must fail closed.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_DEPTH = 32

# ---------------------------------------------------------------------------- tool names and built-in actions

_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=4096)
def name_tokens(name: str) -> frozenset[str]:
    """`filesystem.delete_file` / `deleteFile` → {filesystem, delete, file}."""
    return frozenset(t.lower() for t in _SPLIT.split(name) if t)


@dataclass(frozen=True)
class BuiltinAction:
    """A seed action's meaning when the policy gives no `actions:` entry for it."""

    verbs: frozenset[str]
    objects: frozenset[str]
    destructive_means: bool = False
    """A tool annotated destructive whose name has one of the objects also counts."""
    irreversible: bool = False
    alone: frozenset[str] = frozenset()
    """Verbs that name the action without an object (`rm`, `unlink`)."""
    url_arg: bool = False
    """A tool whose name does not say so still counts when an argument is a URL (checked per call)."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BUILTIN_ACTIONS: dict[str, BuiltinAction] = {
    "file_delete": BuiltinAction(
        _words("delete remove rm unlink erase trash destroy rmdir purge"),
        _words("file files dir directory folder path paths fs filesystem"),
        destructive_means=True,
        irreversible=True,
        alone=_words("rm rmdir unlink"),
    ),
    "file_write": BuiltinAction(
        _words("write edit create save overwrite append move rename put upload patch mkdir copy"),
        _words("file files dir directory folder path paths fs filesystem"),
    ),
    "send_email": BuiltinAction(
        _words("send reply forward compose draft"),
        _words("email emails mail mails message messages gmail outlook smtp inbox"),
        irreversible=True,
    ),
    "send_message": BuiltinAction(
        _words("send post reply forward publish"),
        _words("message messages chat slack teams discord sms text tweet post channel"),
        irreversible=True,
    ),
    "api_call": BuiltinAction(
        _words("fetch request call get post put patch delete http curl invoke webhook browse navigate"),
        _words("api url http https endpoint request webhook fetch web rest graphql"),
        url_arg=True,
    ),
    "purchase": BuiltinAction(
        _words("buy purchase checkout pay order charge subscribe refund transfer"),
        frozenset(),
        irreversible=True,
    ),
    "database_write": BuiltinAction(
        _words("insert update delete drop alter truncate write execute exec upsert create merge migrate query run"),
        _words("db database sql table tables query record records row rows postgres mysql sqlite mongo collection"),
        destructive_means=True,
        irreversible=True,
    ),
    "shell": BuiltinAction(
        _words("run exec execute spawn start"),
        _words("shell command cmd bash sh terminal process script"),
        irreversible=True,
    ),
}


READ_VERBS = _words("get list read search find show view describe lookup count check preview estimate validate status")
"""A tool named for looking (`get_order`, `list_payments`) does not perform the action its object names."""


def builtin_match(action: str, server: str, tool: str, annotations: Mapping[str, Any]) -> str | None:
    """Why `server.tool` performs the built-in `action`, or None when it does not."""
    destroys = annotations.get("destructiveHint") is True and not annotations.get("readOnlyHint")
    return _builtin_match(action, server, tool, destroys)


@functools.lru_cache(maxsize=4096)
def _builtin_match(action: str, server: str, tool: str, destroys: bool) -> str | None:
    meaning = BUILTIN_ACTIONS.get(action)
    if meaning is None:
        return None
    tool_words = name_tokens(tool)
    words = tool_words | name_tokens(server)
    verbs = tool_words & meaning.verbs
    objects = words & meaning.objects
    looks = not meaning.url_arg and _first_token(tool) in READ_VERBS
    if verbs and (objects or not meaning.objects or verbs & meaning.alone) and not looks:
        found = sorted(verbs | objects)
        return f"name has the words {', '.join(found)} of action {action}"
    if meaning.destructive_means and objects and destroys:
        return f"annotated destructiveHint and named {', '.join(sorted(objects))} ({action})"
    return None


@functools.lru_cache(maxsize=4096)
def _first_token(name: str) -> str:
    parts = [t for t in _SPLIT.split(name) if t]
    return parts[0].lower() if parts else ""


ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
"""The MCP spec's meaning of an absent hint: assume the worst, as a policy should."""


def effective_hint(key: str, annotations: Mapping[str, Any]) -> Any:
    """A hint's value as the spec reads it: absent means the default; a read-only tool destroys nothing."""
    if key in ("destructiveHint", "idempotentHint") and annotations.get("readOnlyHint") is True:
        return key == "idempotentHint"
    return annotations.get(key, ANNOTATION_DEFAULTS.get(key))


def annotations_match(wanted: Mapping[str, Any], annotations: Mapping[str, Any]) -> str | None:
    """None when every wanted hint holds; otherwise the first one that does not."""
    for key, value in wanted.items():
        actual = effective_hint(key, annotations)
        if actual != value:
            return f"{key} is {actual!r}, not {value!r}"
    return None


def glob_match(pattern: str, server: str, tool: str) -> bool:
    """`server.tool` globs; a pattern without a dot matches the bare tool name too."""
    if fnmatch.fnmatchcase(f"{server}.{tool}", pattern):
        return True
    return "." not in pattern and fnmatch.fnmatchcase(tool, pattern)


# ---------------------------------------------------------------------------- arguments: strings, addresses, hosts


def strings(value: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string in nested arguments, with the key it sits under."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from strings(v, str(k), depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v, key, depth + 1)


class Pairs(list):  # type: list[tuple[str, str]]
    """The (key, string) pairs of one call's arguments, walked once and shared by every fact."""


def pairs(arguments: Any) -> Pairs:
    """`strings(arguments)` as a list, walked without generators (this runs on every call)."""
    if isinstance(arguments, Pairs):
        return arguments
    out = Pairs()
    stack: list[tuple[str, Any, int]] = [("", arguments, 0)]
    while stack:
        key, value, depth = stack.pop()
        if isinstance(value, str):
            out.append((key, value))
        elif depth > MAX_DEPTH:
            continue
        elif isinstance(value, Mapping):
            stack.extend((str(k), v, depth + 1) for k, v in reversed(value.items()))
        elif isinstance(value, (list, tuple)):
            stack.extend((key, v, depth + 1) for v in reversed(value))
    return out


_URL = re.compile(r"\b(?:https?|wss?|ftp)://[^\s\"'<>]+", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")
_BARE_HOST = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:/.*)?$")
_HOST_KEYS = {"url", "uri", "host", "hostname", "domain", "endpoint", "base_url", "baseurl", "origin", "href", "link", "server"}


def hosts(arguments: Any) -> set[str]:
    """Hosts of URL-like values anywhere in the arguments (bare hostnames under url/host-like keys)."""
    found: set[str] = set()
    for key, text in pairs(arguments):
        for url in _URL.findall(text) if "://" in text else ():
            host = _host_of(url)
            if host:
                found.add(host)
        if key.lower() in _HOST_KEYS and _BARE_HOST.match(text.strip()):
            host = _host_of("http://" + text.strip())
            if host:
                found.add(host)
    return found


_WHOLE_URL = re.compile(r"^(?:https?|wss?|ftp)://[^\s\"'<>]+$", re.IGNORECASE)


def url_arguments(arguments: Any) -> set[str]:
    """Hosts of argument values that *are* a URL (not text that mentions one), or a host under a url-like key."""
    found: set[str] = set()
    for key, text in pairs(arguments):
        value = text.strip()
        if "://" in value and _WHOLE_URL.match(value):
            host = _host_of(value)
        elif key.lower() in _HOST_KEYS and _BARE_HOST.match(value):
            host = _host_of("http://" + value)
        else:
            continue
        if host:
            found.add(host)
    return found


def _host_of(url: str) -> str | None:
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def email_domains(value: Any) -> set[str]:
    return {m.lower() for _, text in pairs(value) if "@" in text for m in _EMAIL.findall(text)}


def is_internal(domain: str, internal_domains: tuple[str, ...]) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in internal_domains)


def any_external(domains: set[str], internal_domains: tuple[str, ...]) -> bool:
    """True if one of `domains` is outside; with none found, unknown counts as external."""
    if not domains:
        return True
    return any(not is_internal(d, internal_domains) for d in domains)


def host_matches(patterns: tuple[str, ...], found: set[str]) -> str | None:
    for host in sorted(found):
        for pattern in patterns:
            if fnmatch.fnmatchcase(host, pattern.lower()):
                return f"host {host} matches {pattern}"
    return None


# ---------------------------------------------------------------------------- SQL


_SQL = re.compile(
    r"(?:^|;)\s*(?:select|insert|update|delete|with|create|drop|alter|truncate|merge|replace|upsert|grant|revoke|copy"
    r"|call|exec|execute|explain|pragma|vacuum|lock|attach|detach|rename|reindex|analyze|values|load|begin)\b",
    re.IGNORECASE,
)
"""A statement keyword at the start, or after a `;` (`SET x = 1; DELETE FROM users`)."""
_SQL_KEYS = re.compile(r"sql|^(?:statements?|stmts?)$", re.IGNORECASE)
"""Any text under such a key is SQL, whatever its first word (`EXEC purge`, `(SELECT 1)`)."""
ALL_TABLES = frozenset({"*"})


@dataclass(frozen=True)
class SqlTouch:
    """Tables a call's SQL touches, and whether it writes. `tables == ALL_TABLES` when unreadable."""

    tables: frozenset[str]
    writes: bool
    statements: int


def sql_texts(arguments: Any) -> list[str]:
    """Argument strings that are SQL: starting with a statement keyword, or under an `sql`-like key."""
    return [text for key, text in pairs(arguments) if text.strip() and (_SQL.search(text) or _SQL_KEYS.search(key))]


def sql_touch(arguments: Any) -> SqlTouch:
    """Parse the call's SQL. Only statements known to read (queries without INTO, DESCRIBE,
    transaction control) count as reads; any other statement writes. A statement sqlglot cannot
    parse, or parses into something it does not understand, touches every table."""
    texts = sql_texts(arguments)
    if not texts:
        return SqlTouch(frozenset(), False, 0)
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warning would log the SQL
    reads = (exp.Query, exp.Describe, exp.Transaction, exp.Commit, exp.Rollback)
    writes_ = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Drop, exp.Alter, exp.Create, exp.TruncateTable,
               exp.Copy, exp.Grant, exp.Revoke)
    tables: set[str] = set()
    writes = False
    count = 0
    for text in texts:
        try:
            statements = [s for s in sqlglot.parse(text) if s is not None]
        except (sqlglot.errors.SqlglotError, RecursionError):
            return SqlTouch(ALL_TABLES, True, count + 1)  # unreadable: every table, and a write
        for statement in statements:
            count += 1
            if not isinstance(statement, reads + writes_):  # a Command ("not understood"), EXEC, PRAGMA, SET…
                return SqlTouch(ALL_TABLES, True, count)
            writes = (
                writes
                or isinstance(statement, writes_)
                or bool(statement.args.get("into"))  # SELECT … INTO new_table
                or any(True for _ in statement.find_all(*writes_))  # a DELETE inside a CTE
            )
            for table in statement.find_all(exp.Table):
                if table.name:
                    tables.add(table.name.lower())
                    if table.db:
                        tables.add(f"{table.db}.{table.name}".lower())
    return SqlTouch(frozenset(tables), writes, count)


_TABLE_KEYS = {"table", "tables", "table_name", "collection", "collection_name"}


def named_tables(arguments: Any) -> SqlTouch:
    """Tables named by argument keys such as `table:` or `collection:`, for database tools without SQL."""
    names = frozenset(text.strip().lower() for key, text in pairs(arguments) if key.lower() in _TABLE_KEYS and text.strip())
    return SqlTouch(names, bool(names), len(names))


def tables_match(patterns: tuple[str, ...], touch: SqlTouch) -> str | None:
    if touch.tables == ALL_TABLES:
        if touch.statements:
            return "SQL could not be parsed: counts as touching every table"
        return "a database write with no SQL or table name in its arguments: counts as touching every table"
    for table in sorted(touch.tables):
        for pattern in patterns:
            if fnmatch.fnmatchcase(table, pattern.lower()):
                return f"SQL touches table {table}"
    return None
