"""The worker's own file (DESIGN §7b), read as strictly as the instance file.

Every problem carries `file:line` and all are reported at once
(`ConfigError`); paths are relative to the file. The worker's name must be
the CN of its certificate, because that is the name the broker knows it by.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from survivor.config.build import DEFAULT_PLUGIN_DIRS, SYSTEM_MODULE_DIR, _log, _paths
from survivor.config.build_workers import broker_config, is_subject_token
from survivor.config.fields import Context, Fields
from survivor.config.load import RawConfig, read_yaml
from survivor.config.yaml import LoadFailure
from survivor.errors import ConfigError
from survivor.model.config import BrokerConfig, LogConfig
from survivor.remote.certs import CertificateError, certificate_subject

WORKER_KEYS = frozenset(
    ("name", "groups", "broker", "module_dir", "plugin_dirs", "concurrency", "log", "output_cap")
)
BROKER_KEYS = frozenset(("servers", "ca", "cert", "key", "subject_prefix"))
DEFAULT_PREFIX = "survivor.main"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    path: Path
    name: str
    groups: tuple[str, ...]
    broker: BrokerConfig
    module_dirs: tuple[Path, ...]
    plugin_dirs: tuple[Path, ...]
    concurrency: int = 100
    output_cap: int = 65536
    log: LogConfig = LogConfig()  # noqa: RUF009 (frozen: one shared default is fine)


def load_worker_config(path: Path) -> WorkerConfig:
    """Read and check the worker's file; ConfigError with every problem found."""
    file = str(path)
    raw = RawConfig(path=path, base_dir=Path(os.path.abspath(path.parent)))
    ctx = Context(raw)
    try:
        doc = read_yaml(path, file, raw)
    except LoadFailure as failure:
        raise ConfigError([failure.problem]) from None
    f = ctx.fields(doc, "worker", WORKER_KEYS, file, 1)
    if f is None:
        raise ConfigError(raw.problems)
    name = f.text("name", required=True)
    if name is not None and not is_subject_token(name):
        f.bad("name", f"{name!r} must be a safe name without dots (a NATS subject token)")
    groups = []
    for group, line in f.names("groups", "worker group", required=True):
        if is_subject_token(group):
            groups.append(group)
        else:
            ctx.error(file, line, f"worker: groups: {group!r} is not a NATS subject token")
    broker = None
    if "broker" in f:
        b = ctx.fields(f.get("broker"), "worker: broker", BROKER_KEYS, file, f.line("broker"))
        if b is not None:
            broker = broker_config(b, raw.base_dir, DEFAULT_PREFIX)
            if name is not None and broker.cert.is_file():
                _check_cn(f, name, broker.cert)
    else:
        f.missing("broker", " (servers, ca, cert, key, subject_prefix)")
    concurrency = f.integer("concurrency", 100, 1, 10000)
    output_cap = f.integer("output_cap", 65536, 1024)
    module_dirs = _paths(f, "module_dir", raw.base_dir, (SYSTEM_MODULE_DIR,))
    plugin_dirs = _paths(f, "plugin_dirs", raw.base_dir, DEFAULT_PLUGIN_DIRS)
    log = _log(ctx, f, raw.base_dir)
    if raw.problems or name is None or broker is None:
        raise ConfigError(sorted(raw.problems, key=lambda p: p.line))
    return WorkerConfig(
        path=path,
        name=name,
        groups=tuple(groups),
        broker=broker,
        module_dirs=module_dirs,
        plugin_dirs=plugin_dirs,
        concurrency=concurrency,
        output_cap=output_cap,
        log=log,
    )


def _check_cn(f: Fields, name: str, cert: Path) -> None:
    try:
        subject = certificate_subject(cert)
    except CertificateError as err:
        f.bad("broker", str(err))
        return
    if f"CN={name}" not in subject.split(","):
        f.bad("name", f"{name!r} is not the CN of its certificate {cert} ({subject})")
