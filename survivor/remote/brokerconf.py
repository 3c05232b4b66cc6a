"""Render the nats-server configuration for the approved workers (DESIGN §7b): pure text.

The broker does the approving: TLS with `verify_and_map` makes a client
certificate's subject its user name, so a certificate from our CA whose
subject is not listed here is refused at connect, and each user's permissions
keep a worker to its own groups' subjects. `survivor broker-config` reads the
config and the scheduler's certificate subject (remote.certs) and prints what
`render` returns; nothing here reads a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from survivor.model.config import WorkerGroup, WorkersConfig

DEFAULT_LISTEN = "0.0.0.0:4222"


def check_subject(prefix: str, group: str) -> str:
    """Where work for a worker group is requested."""
    return f"{prefix}.check.{group}"


def heartbeat_subject(prefix: str, worker: str) -> str:
    return f"{prefix}.hb.{worker}"


def worker_groups_of(worker: str, groups: Mapping[str, WorkerGroup]) -> list[str]:
    """The groups that list `worker`, in config order."""
    return [name for name, group in groups.items() if worker in group.workers]


def render(
    workers: WorkersConfig,
    groups: Mapping[str, WorkerGroup],
    *,
    scheduler_subject: str,
    server_cert: Path,
    server_key: Path,
    listen: str = DEFAULT_LISTEN,
    source: str = "",
) -> str:
    """A complete nats-server configuration file (nats-server 2.9 or later)."""
    prefix = workers.broker.subject_prefix
    users = [
        _user(
            scheduler_subject,
            publish=[f"{prefix}.check.>"],
            subscribe=["_INBOX.>", f"{prefix}.hb.>"],
            responses=False,
            comment="the scheduler (workers.broker.cert)",
        )
    ]
    for name, approved in workers.approved.items():
        mine = worker_groups_of(name, groups)
        users.append(
            _user(
                approved.subject,
                publish=[heartbeat_subject(prefix, name)],
                subscribe=[f"{check_subject(prefix, g)} {g}" for g in mine],
                responses=True,
                comment=f"worker {name}: groups {', '.join(mine) or '(none)'}",
            )
        )
    head = [
        "# nats-server configuration rendered by `survivor broker-config`"
        + (f" from {source}" if source else ""),
        "# Re-render after changing workers:, then: nats-server --signal reload",
        f"listen: {_quote(listen)}",
        "tls {",
        f"  cert_file: {_quote(str(server_cert))}",
        f"  key_file: {_quote(str(server_key))}",
        f"  ca_file: {_quote(str(workers.broker.ca))}",
        "  verify_and_map: true  # the client certificate's subject is its user name",
        "}",
        "authorization {",
        "  users = [",
    ]
    return "\n".join([*head, *users, "  ]", "}", ""])


def _user(
    subject: str, *, publish: list[str], subscribe: list[str], responses: bool, comment: str
) -> str:
    permissions = [f"publish: {_list(publish)}", f"subscribe: {_list(subscribe)}"]
    if responses:
        permissions.append("allow_responses: true")
    return (
        f"    # {comment}\n"
        f"    {{user: {_quote(subject)}, permissions: {{\n"
        + "".join(f"        {line}\n" for line in permissions)
        + "    }}"
    )


def _list(items: list[str]) -> str:
    # An empty allow list would mean "no restriction" to nats-server: deny everything instead.
    if not items:
        return '{deny: [">"]}'
    return "[" + ", ".join(_quote(item) for item in items) + "]"


def _quote(text: str) -> str:
    """A double-quoted string; JSON escaping is what nats-server's parser reads back."""
    return json.dumps(text)
