"""What common programs do, for the shell reader: HTTP clients, database clients, git, and the
cloud and infrastructure CLIs (aws, gcloud, az, kubectl, terraform, helm...).

Each handler gets one simple command's words (prefixes already stripped) and records the actions,
hosts, tables and a short phrase in a `ShellAnalysis`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from signoff.policy.understand import sql as sqlmod
from signoff.policy.understand import urls

EVERY_ACTION = frozenset(
    {
        "shell",
        "file_write",
        "file_delete",
        "api_call",
        "database_write",
        "database_delete",
        "send_email",
        "send_message",
        "deploy",
        "access_change",
        "sensitive_read",
        "payment",
    }
)
SENSITIVE_PATHS = re.compile(
    r"(^|/)(\.env(\.[\w.-]+)?|\.netrc|\.pgpass|\.git-credentials|\.npmrc|\.pypirc|id_[a-z0-9]+|[\w.-]+\.pem|[\w.-]+\.key"
    r"|credentials(\.json)?|\.aws/|\.ssh/|\.gnupg/|\.kube/config|\.docker/config\.json|shadow|gshadow|secrets?(\.\w+)?"
    r"|\.config/gcloud/|\.azure/|kubeconfig|\.vault-token|\.htpasswd)",
)
CLOUD = {
    "aws",
    "gcloud",
    "gsutil",
    "az",
    "kubectl",
    "oc",
    "terraform",
    "tofu",
    "pulumi",
    "helm",
    "doctl",
    "flyctl",
    "fly",
    "heroku",
    "vercel",
    "netlify",
    "firebase",
    "wrangler",
    "serverless",
    "sls",
    "eksctl",
    "ansible-playbook",
    "cdk",
    "docker",
    "podman",
    "systemctl",
    "service",
    "launchctl",
    "gh",
    "glab",
}
_DESTROY = re.compile(
    r"^(delete|destroy|terminate|remove|rm|rb|purge|drain|uninstall|deregister|disable|kill|prune|"
    r"stop|down|cordon|taint|revoke|detach|release|rmi|force-unlock)(?:[-_]|$)",
    re.IGNORECASE,
)
_CHANGE = re.compile(
    r"^(create|update|put|apply|deploy|run|start|restart|scale|patch|replace|set|edit|modify|attach|"
    r"install|upgrade|rollback|rollout|push|import|sync|cp|mv|up|enable|invoke|publish|promote|release|"
    r"tag|label|annotate|expose|autoscale|reboot|restore|copy|associate|register|add|exec|login|"
    r"reset|resize|move|assign|grant)(?:[-_]|$)",
    re.IGNORECASE,
)
_ACCESS = re.compile(
    r"(iam|role|policy|policies|permission|acl|grant|collaborator|member|invite|access-key|accesskey|"
    r"api-key|apikey|service-account|serviceaccount|user|binding|token|ssh-key|sshkey|secret-access)",
    re.IGNORECASE,
)
_SECRET = re.compile(
    r"(get-secret-value|secrets?|get-parameters?|decrypt|credentials|kms|vault|keyvault|get-password"
    r"|access-token|print-access-token|get-login-password)",
    re.IGNORECASE,
)
_READ_VERB = re.compile(
    r"^(describe|list|get|show|ls|status|logs?|view|top|explain|version|plan|validate|output|info|"
    r"inspect|search|whoami|help|diff|history|check|wait|config|auth|print|lookup|query|fmt|ps|images|stats|events|port"
    r"|top)(?:[-_]|$)",
    re.IGNORECASE,
)
HTTP = {"curl", "wget", "http", "https", "xh", "xhs", "httpie", "curlie", "aria2c", "lynx", "w3m"}
DATABASES = {
    "psql",
    "mysql",
    "mariadb",
    "sqlite3",
    "sqlite",
    "duckdb",
    "sqlcmd",
    "clickhouse-client",
    "cockroach",
    "pgcli",
    "mycli",
    "litecli",
    "usql",
    "mongosh",
    "mongo",
    "redis-cli",
    "valkey-cli",
    "cqlsh",
}


@dataclass
class ShellAnalysis:
    actions: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    sql: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    recipients: list[str] = field(default_factory=list)
    destructive: bool = False
    method: str = ""
    """The HTTP method of curl/wget/httpie requests (the last one)."""
    unparseable: str = ""
    """Why the command line could not be read (it then counts as every action)."""
    what: list[str] = field(default_factory=list)
    """One short phrase per recognised effect, e.g. "rm -rf build/ deletes files"."""

    def add(self, actions: set[str] | frozenset[str], phrase: str, *, destructive: bool = False) -> None:
        self.actions |= set(actions)
        self.destructive = self.destructive or destructive
        if phrase and phrase not in self.what and len(self.what) < 8:
            self.what.append(phrase)


def remote_host(arg: str) -> str | None:
    if arg.startswith("-") or ("@" not in arg and ":" not in arg):
        return None
    host = arg.split("@", 1)[-1].split(":", 1)[0]
    return urls.host_of_value(host) if host else None


_CURL_BODY = {
    "-d",
    "--data",
    "--data-raw",
    "--data-binary",
    "--data-urlencode",
    "--data-ascii",
    "-F",
    "--form",
    "--form-string",
    "-T",
    "--upload-file",
    "--json",
}
_WGET_BODY = ("--post-data", "--post-file", "--body-data", "--body-file")


def http(name: str, args: list[str], line: str, result: ShellAnalysis) -> None:
    method = None
    body = False
    hosts: set[str] = set()
    writes_file = False
    for i, a in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a in ("-X", "--request", "--method") or a.startswith("--method="):
            method = (a.split("=", 1)[1] if "=" in a else nxt).upper()
        elif a.startswith("-X") and len(a) > 2:
            method = a[2:].upper()
        elif a in _CURL_BODY or a.split("=", 1)[0] in _WGET_BODY or any(a.startswith(f) for f in ("--data", "--json")):
            body = True
        elif a in ("-o", "-O", "--output", "--output-document") or a.startswith("--output"):
            writes_file = True
        elif name in ("http", "https", "xh", "xhs", "httpie", "curlie") and a.upper() in (
            "GET",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "HEAD",
            "OPTIONS",
        ):
            method = a.upper()
        elif name in ("http", "https", "xh", "xhs", "httpie", "curlie") and re.match(r"^[\w.-]+(:=|=|@)", a) and i > 0:
            body = True
        host = urls.host_of_value(a) if not a.startswith("-") else None
        if host and ("://" in a or "." in a or a.startswith("localhost")):
            hosts.add(host)
    if not hosts:
        hosts.add(urls.UNPARSEABLE)
    method = method or ("POST" if body else "GET")
    result.hosts |= hosts
    if not (result.method not in ("", "GET", "HEAD") and method in ("GET", "HEAD")):
        result.method = method  # else the riskier request seen earlier on the line decides
    shown = ", ".join(sorted(h for h in hosts))
    deleting = method == "DELETE"
    result.add(
        {"api_call"} | ({"database_delete", "database_write"} if deleting else set()),
        f"{method} request to {shown}",
        destructive=deleting,
    )
    if writes_file:
        result.add({"file_write"}, f"{line} writes the response to a file")


def database(name: str, args: list[str], stdin: str, line: str, result: ShellAnalysis) -> None:
    if name in ("redis-cli", "valkey-cli"):
        words = [a for a in args if not a.startswith("-")]
        skip = {"-h", "-p", "-a", "-n", "-u", "--user", "--pass"}
        words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in skip)]
        kind = sqlmod.redis_op(words) if words else "unknown"
        if kind == "read":
            return
        result.add(
            {"database_write"} | ({"database_delete"} if kind in ("delete", "unknown") else set()),
            f"{line} changes Redis data",
            destructive=kind in ("delete", "unknown"),
        )
        result.tables.add("*" if kind == "unknown" or not words[1:] else words[1].lower())
        return
    if name in ("mongosh", "mongo"):
        code = next((args[i + 1] for i, a in enumerate(args) if a == "--eval" and i + 1 < len(args)), None) or stdin
        ops = sqlmod.mongo_ops(code) if code else [("unknown", "*")]
        if not ops:
            ops = [("unknown", "*")]
        for kind, collection in ops:
            if kind == "read":
                continue
            actions = {"database_write"} | ({"database_delete"} if kind in ("delete", "unknown") else set())
            result.add(actions, f"{kind}s MongoDB collection {collection}", destructive=kind in ("delete", "unknown"))
            result.tables.add(collection)
        return
    flags = {
        "psql": ("-c", "--command"),
        "mysql": ("-e", "--execute"),
        "mariadb": ("-e", "--execute"),
        "sqlcmd": ("-Q", "-q"),
        "clickhouse-client": ("-q", "--query"),
        "cockroach": ("-e", "--execute"),
        "duckdb": ("-c",),
        "cqlsh": ("-e", "--execute"),
    }.get(name, ())
    texts = []
    for i, a in enumerate(args):
        if a in flags and i + 1 < len(args):
            texts.append(args[i + 1])
        elif any(a.startswith(f + "=") for f in flags if f.startswith("--")):
            texts.append(a.split("=", 1)[1])
        elif a in ("-f", "--file") or a.startswith("--file="):
            texts.append("\x00")  # a file of SQL: unreadable
    if name in ("sqlite3", "sqlite", "duckdb", "litecli") and not texts:
        plain = [a for a in args if not a.startswith("-")]
        if len(plain) >= 2:
            texts.append(" ".join(plain[1:]))
    if stdin:
        texts.append(stdin)
    if not texts:
        texts.append("\x00")  # SQL from input or a file: unreadable
    touch = (
        sqlmod.analyze(texts)
        if "\x00" not in texts
        else sqlmod.SqlTouch(sqlmod.ALL_TABLES, True, 1, True, "the SQL is not on the command line")
    )
    result.sql.extend(t for t in texts if t != "\x00")
    if not touch.writes:
        return
    result.tables |= set(touch.tables)
    actions = {"database_write"} | ({"database_delete"} if touch.deletes else set())
    what = touch.why or ("deletes rows or tables" if touch.deletes else "overwrites rows" if touch.overwrites else "writes")
    result.add(
        actions,
        f"{name}: {what} ({', '.join(sorted(touch.tables)) or 'no table named'})",
        destructive=touch.deletes or touch.overwrites,
    )


def git(args: list[str], line: str, result: ShellAnalysis) -> None:
    while args and args[0].startswith("-"):  # git -C dir …
        args = args[2:] if args[0] in ("-C", "-c", "--git-dir", "--work-tree") else args[1:]
    if not args:
        return
    sub, rest = args[0], args[1:]
    if sub == "push":
        forced = any(
            a in ("-f", "--force", "--force-with-lease", "--mirror", "--delete", "-d", "--prune")
            or a.startswith("--force")
            or a.startswith("+")
            or a.startswith(":")
            for a in rest
        )
        result.add(
            {"api_call", "file_write"} | ({"file_delete"} if forced else set()),
            f"{line} " + ("rewrites or deletes remote history" if forced else "pushes to a remote"),
            destructive=forced,
        )
        return
    destroys = (
        (sub == "reset" and "--hard" in rest)
        or (sub == "clean" and any(a.startswith("-") and ("f" in a or a == "--force") for a in rest))
        or (sub == "branch" and any(a in ("-D", "-d", "--delete") for a in rest))
        or (sub == "checkout" and ("--" in rest or "." in rest or "-f" in rest))
        or (sub == "restore")
        or (sub == "stash" and rest[:1] in (["drop"], ["clear"]))
        or (sub == "filter-branch")
        or (sub == "gc" and "--prune=now" in rest)
    )
    if destroys:
        result.add({"file_delete", "file_write"}, f"{line} discards work", destructive=True)
        return
    if sub in (
        "status",
        "log",
        "diff",
        "show",
        "blame",
        "grep",
        "ls-files",
        "rev-parse",
        "describe",
        "shortlog",
        "reflog",
        "fetch",
        "branch",
        "tag",
        "remote",
        "config",
        "cat-file",
        "ls-tree",
        "version",
        "help",
    ):
        if sub == "config" and any(not a.startswith("-") for a in rest[1:]):
            result.add({"file_write"}, f"{line} changes git config")
        return
    if sub in ("clone", "pull"):
        host = next(
            (remote_host(a) or urls.host_of_value(a) for a in rest if not a.startswith("-") and (remote_host(a) or "://" in a)),
            None,
        )
        if host:
            result.hosts.add(host)
    result.add({"file_write"}, f"{line} changes the repository")


def cloud(name: str, args: list[str], line: str, result: ShellAnalysis) -> None:
    words = [a for a in args if not a.startswith("-")]
    verbs = words[:3]
    text = " ".join(words[:4])
    if name == "aws" and words[:1] == ["dynamodb"] and len(words) > 1:
        op = words[1].lower()
        table = next((args[i + 1] for i, a in enumerate(args) if a == "--table-name" and i + 1 < len(args)), "*")
        if op in sqlmod.DYNAMO_DELETES or op in sqlmod.DYNAMO_WRITES:
            deleting = op in sqlmod.DYNAMO_DELETES
            result.add(
                {"database_write"} | ({"database_delete"} if deleting else set()),
                f"{line} changes DynamoDB table {table}",
                destructive=deleting,
            )
            result.tables.add(table.lower())
            return
    if (
        _SECRET.search(text)
        and not any(_DESTROY.match(v) or _CHANGE.match(v) for v in verbs if not _SECRET.search(v))
        and any(
            re.match(r"^(get|describe|access|read|print|show|view|list|decrypt|export)", v, re.IGNORECASE) or _SECRET.search(v)
            for v in verbs
        )
    ):
        result.add({"sensitive_read"}, f"{line} reads secrets")
        return
    if name == "aws" and words[:1] == ["s3"] and len(words) > 1 and words[1] in ("rm", "rb", "mv"):
        result.add({"deploy", "file_delete"}, f"{line} deletes cloud storage", destructive=True)
        return
    destroy = (
        any(_DESTROY.match(v) for v in verbs)
        or (name in ("terraform", "tofu") and verbs[:1] == ["apply"])
        or (name == "pulumi" and verbs[:1] == ["up"])
    )  # an apply can destroy what the plan replaces
    change = any(_CHANGE.match(v) for v in verbs)
    if destroy and verbs[:1] in (["apply"], ["up"]):
        result.add({"deploy"}, f"{line} changes infrastructure (and may destroy some)", destructive=True)
    elif destroy:
        result.add({"deploy", "file_delete"}, f"{line} deletes or stops infrastructure", destructive=True)
    elif change:
        result.add({"deploy"}, f"{line} changes infrastructure")
    elif all(_READ_VERB.match(v) or not _CHANGE.match(v) for v in verbs) and any(_READ_VERB.match(v) for v in verbs):
        return
    else:
        result.add({"deploy"}, f"{line} may change infrastructure")
    if _ACCESS.search(text) and (destroy or change):
        result.add({"access_change"}, f"{line} changes access")
