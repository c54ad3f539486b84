"""What a shell command line does, read with a real shell parser (bashlex).

Every simple command is found through pipes, `&&`, `;`, subshells, `$(…)`, loops, functions and
`sh -c`/`bash -c`/`eval` strings (parsed again), after prefixes such as sudo, env, nohup,
timeout, nice and xargs. Each program maps onto actions: rm/shred/truncate → file_delete,
curl/wget/httpie → api_call (with the host), psql/mysql/sqlite3/mongosh/redis-cli → database_*,
cloud CLIs' destructive verbs → deploy, sendmail/mail → send_email, `>` → file_write. A program
not known to be read-only is `shell` (it may do anything). A command line that cannot be parsed,
or whose program is computed (`$CMD`), counts as every action.
"""

from __future__ import annotations

import functools
import os
import re

from signoff.policy.understand.programs import (
    CLOUD,
    DATABASES,
    EVERY_ACTION,
    HTTP,
    SENSITIVE_PATHS,
    ShellAnalysis,
    cloud,
    database,
    git,
    http,
    remote_host,
)

MAX_NESTING = 8
MAX_LENGTH = 16_384
"""Longer command lines are not parsed (parsing is superlinear): they count as every action."""
__all__ = ["EVERY_ACTION", "SENSITIVE_PATHS", "ShellAnalysis", "analyze"]
SQL_WORDS = {
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "CREATE",
    "GRANT",
    "REVOKE",
    "MERGE",
    "REPLACE",
    "WITH",
    "COPY",
    "VACUUM",
    "ATTACH",
    "PRAGMA",
    "EXPLAIN",
    "SHOW",
    "CALL",
    "EXEC",
    "EXECUTE",
}
READ_ONLY = frozenset(
    """ls ll dir cat head tail less more grep egrep fgrep rg ag ack wc echo printf pwd whoami id date uname which
    whereis type file stat du df tree sort uniq cut tr diff cmp comm jq yq basename dirname realpath readlink ps
    uptime hostname true false test [ sleep seq xxd hexdump od md5sum sha1sum sha256sum sha512sum cksum nl fold
    column paste join expand unexpand rev tac strings man help cd pushd popd history locale nproc free lscpu lsblk
    printenv-safe git-readonly""".split()
)
PREFIXES = {
    "sudo",
    "doas",
    "env",
    "nohup",
    "timeout",
    "nice",
    "ionice",
    "time",
    "stdbuf",
    "command",
    "builtin",
    "exec",
    "xargs",
    "chronic",
    "unbuffer",
    "setsid",
    "torsocks",
    "proxychains",
    "watch",
    "caffeinate",
    "gtimeout",
}
_PREFIX_WITH_VALUE = {
    "sudo": {"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U"},
    "doas": {"-u", "-C"},
    "env": {"-u", "-C", "-S", "--unset", "--chdir"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "nice": {"-n", "--adjustment"},
    "ionice": {"-c", "-n", "-p"},
    "stdbuf": {"-i", "-o", "-e"},
    "xargs": {"-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a", "--max-args", "--max-procs", "--delimiter"},
    "watch": {"-n", "-d", "--interval"},
}
SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "fish", "ash", "busybox"}
INTERPRETERS = {
    "python",
    "python3",
    "python2",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "deno",
    "bun",
    "php",
    "lua",
    "osascript",
    "powershell",
    "pwsh",
    "Rscript",
    "awk",
    "gawk",
    "mawk",
    "tclsh",
    "java",
    "jshell",
    "groovy",
}
MAILERS = {"sendmail", "mail", "mailx", "mutt", "msmtp", "swaks", "ssmtp", "neomutt", "s-nail"}
NETWORK = {"ssh", "scp", "sftp", "rsync", "nc", "ncat", "netcat", "telnet", "ftp", "socat", "rclone"}


@functools.lru_cache(maxsize=2048)
def analyze(command: str) -> ShellAnalysis:
    """Everything one command line does (cached: agents repeat commands)."""
    result = ShellAnalysis()
    _parse_into(command, result, 0)
    if result.unparseable:
        result.actions |= EVERY_ACTION
        result.destructive = True
    return result


def _parse_into(command: str, result: ShellAnalysis, depth: int) -> None:
    import bashlex

    if depth > MAX_NESTING:
        result.unparseable = "sh -c nested too deeply"
        return
    if not command.strip():
        return
    if len(command) > MAX_LENGTH:
        result.unparseable = f"the command line is too long to read ({len(command):,} characters)"
        return
    try:
        trees = bashlex.parse(command)
    except Exception as exc:  # noqa: BLE001 - bashlex raises many types (ParsingError, NotImplementedError, IndexError…)
        result.unparseable = f"the command line could not be parsed ({type(exc).__name__})"
        return
    for tree in trees:
        _walk(tree, command, result, depth)


def _walk(node, source: str, result: ShellAnalysis, depth: int) -> None:
    kind = getattr(node, "kind", "")
    if kind == "command":
        _command(node, source, result, depth)
    for name in ("parts", "list"):
        for child in getattr(node, name, None) or ():
            if kind == "command" and getattr(child, "kind", "") == "word" and not getattr(child, "parts", None):
                continue
            _walk(child, source, result, depth)
    for name in ("command", "output", "heredoc"):
        child = getattr(node, name, None)
        if child is not None and hasattr(child, "kind"):
            _walk(child, source, result, depth)


def _command(node, source: str, result: ShellAnalysis, depth: int) -> None:
    words: list[str] = []
    computed = False
    heredoc = ""
    for part in node.parts:
        if part.kind == "word":
            if not words and any(
                p.kind in ("parameter", "commandsubstitution", "processsubstitution", "tilde") and p.kind != "tilde"
                for p in getattr(part, "parts", ()) or ()
            ):
                computed = True
            words.append(part.word)
        elif part.kind == "redirect":
            _redirect(part, result)
            here = getattr(part, "heredoc", None)
            if here is not None:
                heredoc += getattr(here, "value", "")
    if computed:
        result.unparseable = f"the program to run is computed ({words[0][:40]}): it could be anything"
        return
    _program(words, heredoc, result, depth)


def _redirect(part, result: ShellAnalysis) -> None:
    kind = part.type
    target = getattr(part.output, "word", None) if hasattr(part.output, "word") else None
    if kind in (">", ">>", ">|", "&>", ">&", "&>>") and isinstance(target, str) and not target.isdigit():
        if target in ("/dev/null", "/dev/stdout", "/dev/stderr", "-"):
            return
        result.add({"file_write"}, f"writes {target}")
        if SENSITIVE_PATHS.search(target):
            result.add({"file_write"}, f"writes {target} (credentials or start-up file)", destructive=True)
    elif kind == "<" and isinstance(target, str) and SENSITIVE_PATHS.search(target):
        result.add({"sensitive_read"}, f"reads {target}")


def _strip_prefixes(words: list[str]) -> list[str]:
    """`sudo -u x env A=1 timeout 5 nice -n 3 rm …` → `rm …`."""
    while words:
        name = os.path.basename(words[0])
        if name not in PREFIXES:
            return words
        rest = words[1:]
        takes_value = _PREFIX_WITH_VALUE.get(name, set())
        while rest and (rest[0].startswith("-") or (name == "env" and "=" in rest[0])):
            flag = rest.pop(0)
            if flag == "--":
                break
            if flag in takes_value and rest:
                rest.pop(0)
        if name in ("timeout", "gtimeout") and rest:
            rest = rest[1:]  # the duration
        words = rest
    return words


def _program(words: list[str], stdin: str, result: ShellAnalysis, depth: int) -> None:
    if words and os.path.basename(words[0]) in PREFIXES:
        first = os.path.basename(words[0])
        words = _strip_prefixes(words)
        if not words and first == "env":  # `env` alone prints the environment, secrets included
            result.add({"sensitive_read"}, "env prints the environment (secrets)")
            return
    while words and "=" in words[0] and not words[0].startswith("="):  # A=1 B=2 cmd
        words = words[1:]
    if not words:
        return
    name = os.path.basename(words[0])
    args = words[1:]
    line = " ".join(words)[:120]
    if (
        _runs_code(name, args, result, depth)
        or _touches_files(name, args, line, result, depth)
        or _reaches_out(name, args, stdin, line, result)
    ):
        return
    if name in ("printenv", "env", "set", "export", "declare") and not args:
        result.add({"sensitive_read"}, f"{name} prints the environment (secrets)")
        return
    if name in (
        "cat",
        "less",
        "more",
        "head",
        "tail",
        "grep",
        "rg",
        "strings",
        "xxd",
        "base64",
        "cp",
        "scp",
        "tar",
        "zip",
        "type",
        "bat",
    ):
        for a in args:
            if SENSITIVE_PATHS.search(a):
                result.add({"sensitive_read"}, f"{line} reads credentials ({a})")
                return
    if name in READ_ONLY:
        return
    if name.upper() in SQL_WORDS:  # input to a database prompt (`DROP TABLE payments;`)
        database("psql", ["-c", " ".join(words)], "", line, result)
        return
    result.add({"shell"}, f"runs {name}")


def _runs_code(name: str, args: list[str], result: ShellAnalysis, depth: int) -> bool:
    """Shells, eval, source and interpreters: the code they run is read too, or it is unreadable."""
    if name in SHELLS:
        if "-c" in args and args.index("-c") + 1 < len(args):
            _parse_into(args[args.index("-c") + 1], result, depth + 1)
        elif any(not a.startswith("-") for a in args):
            result.add({"shell"}, f"runs the script {next(a for a in args if not a.startswith('-'))}")
        else:
            result.unparseable = f"{name} reads commands from its input: they cannot be seen"
        return True
    if name == "eval":
        _parse_into(" ".join(args), result, depth + 1)
        return True
    if name in ("source", "."):
        result.add({"shell"}, f"runs the script {args[0] if args else '?'}")
        return True
    if name in INTERPRETERS or re.match(r"^(python|pypy|node|ruby|perl|php)[\d.]*$", name):
        inline = {"-c", "-e", "--eval", "-E", "-r", "--command", "-Command", "-p", "--print"}
        files = [a for a in args if not a.startswith("-")]
        if any(a in inline for a in args) or not files or (files and files[0] == "-"):
            result.unparseable = f"{name} runs code signoff cannot read"
        else:
            result.add({"shell"}, f"runs {name} {files[0]}")
        return True
    return False


def _touches_files(name: str, args: list[str], line: str, result: ShellAnalysis, depth: int) -> bool:
    """Deleting, overwriting, writing files and changing permissions or accounts."""
    if (
        name in ("rm", "rmdir", "unlink", "shred", "srm", "wipe", "truncate")
        or name.startswith("mkfs")
        or name in ("wipefs", "fdisk", "parted")
    ):
        result.add({"file_delete", "file_write"}, f"{line} deletes files", destructive=True)
        return True
    if name == "dd":
        target = next((a[3:] for a in args if a.startswith("of=")), "")
        result.add(
            {"file_write", "file_delete"} if target.startswith("/dev/") else {"file_write"},
            f"{line} overwrites {target or 'output'}",
            destructive=target.startswith("/dev/"),
        )
        return True
    if name == "find":
        if any(a in ("-delete",) for a in args) or _find_exec_deletes(args):
            result.add({"file_delete", "file_write"}, f"{line} deletes files", destructive=True)
        elif any(a in ("-exec", "-execdir", "-ok", "-okdir") for a in args):
            i = next(i for i, a in enumerate(args) if a in ("-exec", "-execdir", "-ok", "-okdir"))
            inner = [a for a in args[i + 1 :] if a not in ("{}", ";", "+", "\\;")]
            _program(inner, "", result, depth + 1)
        elif any(a.startswith("-fprint") or a == "-fls" for a in args):
            result.add({"file_write"}, f"{line} writes files")
        return True
    if name in (
        "mv",
        "cp",
        "touch",
        "mkdir",
        "tee",
        "ln",
        "install",
        "rsync-local",
        "patch",
        "tar",
        "unzip",
        "zip",
        "gzip",
        "gunzip",
    ):
        result.add({"file_write"}, f"{line} writes files")
        if name == "mv" and any(a == "/dev/null" for a in args):
            result.add({"file_delete"}, f"{line} deletes files", destructive=True)
        return True
    if name == "sed" and any(a.startswith("-i") or a == "--in-place" for a in args):
        result.add({"file_write"}, f"{line} edits files in place")
        return True
    if name in (
        "chmod",
        "chown",
        "chgrp",
        "setfacl",
        "useradd",
        "usermod",
        "userdel",
        "groupadd",
        "passwd",
        "chpasswd",
        "visudo",
        "adduser",
        "deluser",
    ):
        result.add({"access_change", "file_write"}, f"{line} changes permissions or accounts")
        return True
    return False


def _reaches_out(name: str, args: list[str], stdin: str, line: str, result: ShellAnalysis) -> bool:
    """HTTP clients, remote shells, databases, mailers, git and cloud CLIs."""
    if name in HTTP:
        http(name, args, line, result)
        return True
    if name in NETWORK:
        host = next((remote_host(a) for a in args if remote_host(a)), None)
        if host:
            result.hosts.add(host)
        result.add({"api_call"}, f"{line} connects to {host or 'another machine'}")
        return True
    if name in DATABASES:
        database(name, args, stdin, line, result)
        return True
    if name in MAILERS:
        to = [a for a in args if "@" in a and not a.startswith("-")]
        result.recipients.extend(to)
        result.add({"send_email"}, f"{line} sends email" + (f" to {', '.join(to)}" if to else ""))
        return True
    if name == "git":
        git(args, line, result)
        return True
    if name in CLOUD:
        cloud(name, args, line, result)
        return True
    return False


def _find_exec_deletes(args: list[str]) -> bool:
    for i, a in enumerate(args):
        if (
            a in ("-exec", "-execdir", "-ok", "-okdir")
            and i + 1 < len(args)
            and os.path.basename(args[i + 1]) in ("rm", "rmdir", "unlink", "shred", "truncate")
        ):
            return True
    return False
