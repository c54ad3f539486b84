"""What a tool's name says it does, for tools the catalog does not know.

`delete_file` deletes files, `send_email` sends, `create_refund` refunds; `get_`/`list_`/`search_`
names read unless another word in them changes something (`update_status`, `get_or_create_user`);
drafts send nothing. Names are the weakest evidence signoff has, so they only ever add actions
that the arguments then confirm or widen; they never excuse what the arguments show.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
READ_VERBS = frozenset(
    "get list read search find show view describe lookup count check preview estimate validate status "
    "fetch_status query_status retrieve browse inspect summarize explain diff log logs history download "
    "export_status peek head tail ls cat stat info whoami ping".split()
)
DELETE_VERBS = frozenset("delete destroy purge drop erase trash wipe terminate uninstall".split())
"""Verbs that destroy (`remove` often only unlinks: a label, a sub-issue, a member)."""


@functools.lru_cache(maxsize=4096)
def name_tokens(name: str) -> tuple[str, ...]:
    return tuple(t.lower() for t in _SPLIT.split(name) if t)


@dataclass(frozen=True)
class NameRule:
    verbs: frozenset[str]
    objects: frozenset[str]
    alone: frozenset[str] = frozenset()
    """Verbs that name the action without an object (`rm`, `refund`)."""


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


FILES = _w("file files dir directory directories folder folders path paths fs filesystem document documents doc docs blob")
NAME_RULES: dict[str, NameRule] = {
    "file_delete": NameRule(
        _w("delete remove rm unlink erase trash destroy rmdir purge wipe shred"), FILES, _w("rm rmdir unlink")
    ),
    "file_write": NameRule(
        _w("write edit create save overwrite append move rename put upload patch mkdir copy update replace"), FILES
    ),
    "send_email": NameRule(_w("send reply forward"), _w("email emails mail mails gmail outlook smtp inbox")),
    "send_message": NameRule(
        _w("send post reply forward publish"),
        _w("message messages chat slack teams discord sms text tweet channel whatsapp telegram dm"),
    ),
    "api_call": NameRule(
        _w("fetch request call get post put patch delete http curl invoke webhook browse navigate"),
        _w("api url http https endpoint request webhook fetch web rest graphql"),
        _w("fetch curl navigate"),
    ),
    "purchase": NameRule(
        _w("buy purchase checkout order subscribe"),
        _w("cart order orders item items product products subscription plan"),
        _w("buy purchase checkout"),
    ),
    "payment": NameRule(
        _w("pay charge transfer payout capture send create"),
        _w("payment payments charge invoice payout transfer money funds"),
        _w("pay"),
    ),
    "refund": NameRule(_w("refund create issue"), _w("refund refunds"), _w("refund")),
    "database_write": NameRule(
        _w("insert update delete drop alter truncate write execute exec upsert create merge migrate run upload"),
        _w(
            "db database sql table tables record records row rows postgres postgresql mysql sqlite mongo mongodb redis dynamodb supabase "
            "airtable baserow nocodb firestore collection "
            "document documents item items key keys"
        ),
    ),
    "database_delete": NameRule(
        _w("delete drop truncate purge remove flush flushall flushdb"),
        _w(
            "db database table tables record records row rows collection documents document item items key keys "
            "postgres mysql sqlite mongo mongodb redis dynamodb supabase"
        ),
        _w("flushall flushdb"),
    ),
    "shell": NameRule(
        _w("run exec execute spawn start"),
        _w("shell command cmd bash sh terminal process script powershell"),
        _w("bash shell terminal"),
    ),
    "deploy": NameRule(
        _w("deploy release rollout apply provision terminate scale restart destroy publish"),
        _w(
            "deployment deployments service services instance instances cluster stack infrastructure function "
            "functions app apps site sites release pod pods"
        ),
        _w("deploy"),
    ),
    "access_change": NameRule(
        _w("add invite grant revoke remove create update set assign delete rotate"),
        _w(
            "collaborator collaborators member members permission permissions role roles user users iam "
            "policy policies access acl key keys token tokens invite invitation invitations owner owners admin dsn "
            "credential credentials secret secrets"
        ),
    ),
    "sensitive_read": NameRule(
        _w("get read show reveal retrieve export list fetch view decrypt"),
        _w("secret secrets credential credentials password passwords token tokens key keys vault env apikey"),
    ),
}
STRONG = _w("delete remove drop destroy send pay charge refund transfer deploy purge erase terminate")
WRITE_VERBS = _w(
    "create update delete remove write edit modify change set add insert upsert replace move rename copy upload send pay "
    "refund deploy apply run exec execute spawn start stop kill restart archive merge close reopen approve reject cancel "
    "lock unlock ban kick assign submit publish schedule enable disable reset restore import sync install uninstall invite "
    "share grant revoke rotate drop truncate purge erase destroy terminate commit push mark clear flush overwrite append "
    "save mkdir unlink trash wipe shred provision scale rollback revert migrate alter"
)
"""Verbs that change something: a name with one of them is not a read, whatever else it says (`update_status`)."""


@functools.lru_cache(maxsize=4096)
def by_name(server: str, tool: str) -> tuple[frozenset[str], bool, str]:
    """(actions, reads, why) from a tool's name alone."""
    tokens = name_tokens(tool)
    words = set(tokens) | set(name_tokens(server))
    if any(t == "draft" or t == "drafts" for t in tokens):
        return frozenset(), True, f"{tool} writes a draft (nothing leaves until it is sent)"
    reads = bool(set(tokens) & READ_VERBS) and not set(tokens) & (WRITE_VERBS | STRONG)
    found = set()
    for action, rule in NAME_RULES.items():
        verbs = set(tokens) & rule.verbs
        if not verbs:
            continue
        if action == "sensitive_read":
            if words & rule.objects and not (set(tokens) & STRONG - {"send"}):
                found.add(action)
            continue
        if reads and action != "api_call":
            continue
        if (words & rule.objects) or (verbs & rule.alone) or (not rule.objects):
            if action == "api_call" and reads and not (verbs & rule.alone):
                continue
            found.add(action)
    if "access_change" in found and not (set(tokens) & NAME_RULES["access_change"].objects):
        found.discard("access_change")
    if "sensitive_read" in found and "key" in words and not (words & _w("api apikey secret ssh private access")):
        found.discard("sensitive_read")
    if "payment" in found and not (set(tokens) & NAME_RULES["payment"].objects):
        found.discard("payment")
    if "refund" in found and not (set(tokens) & NAME_RULES["refund"].objects):
        found.discard("refund")
    if "file_delete" in found and set(tokens) & NAME_RULES["file_write"].verbs - {"replace"}:
        found.discard("file_delete")  # write_file / move_file are writes, not deletions
    if "database_delete" in found:
        found.add("database_write")
    if "purchase" in found and words & _w("git branch repo repository svn commit"):
        found.discard("purchase")
    if {"database_delete", "file_delete"} <= found:
        found.discard(
            "file_delete" if words & _w("db database sql table tables collection record records") else "database_delete"
        )
    why = (
        f"the name {tool} says {', '.join(sorted(found))}" if found else (f"the name {tool} says it only reads" if reads else "")
    )
    return frozenset(found), reads and not found - {"api_call", "sensitive_read"}, why


DB_WORDS = _w(
    "db database databases sql query queries table tables postgres postgresql mysql sqlite mongo mongodb redis "
    "dynamodb supabase bigquery snowflake clickhouse duckdb execute exec airtable baserow nocodb firestore"
)
CLI_NAMES = frozenset("kubectl helm terraform tofu aws gcloud az docker git gh npm psql mysql redis-cli".split())
"""Programs whose name a tool may carry (`kubectl_get`): the tool is read as that command line."""
