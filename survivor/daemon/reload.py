"""Reload (SIGHUP), and watching the config on disk (DESIGN §6).

Reload is load, build, diff, swap (STYLE habit 4): the new config is loaded
beside the running one while checks go on; on any error every problem is
logged with file:line and the old config keeps running, and daemon.json and
the events history say so; on success the one reference is swapped between
ticks (queued work picks up the new definitions, running work finishes on the
old), removed pairs' state is pruned, and the diff is logged.

A config file changed on disk is only reported (`stale` in daemon.json, and
`survivor status`); SIGHUP stays the one trigger that applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from survivor.clock import utc_iso
from survivor.config import diff_configs, load_config
from survivor.daemon import notify
from survivor.daemon.heartbeat import DaemonStatus, Heartbeat
from survivor.daemon.watch import file_stamps
from survivor.daemon.wiring import Parts
from survivor.errors import ConfigError
from survivor.model.config import Config
from survivor.model.words import counted
from survivor.model.work import Mood

log = logging.getLogger(__name__)

# Instance settings a reload cannot apply to a running daemon.
RESTART_ONLY = (
    "state_dir",
    "history_dir",
    "fsync",
    "results_log",
    "log",
    "module_dirs",
    "plugin_dirs",
    "output_cap",
    "timezone",
)

Event = Callable[..., None]  # event(name, **fields): one record in the daemon events history


def refused_instance_changes(old: Config, new: Config) -> list[str]:
    """Instance settings that changed but need a restart."""
    return [
        f"instance.{f}"
        for f in RESTART_ONLY
        if getattr(old.instance, f) != getattr(new.instance, f)
    ]


class ConfigOnDisk:
    """Whether the config files on disk still say what the running config says."""

    def __init__(self, parts: Parts, status: DaemonStatus, heartbeat: Heartbeat) -> None:
        self.parts = parts
        self.status = status
        self.heartbeat = heartbeat
        self._stamps = self.stamp(parts.running.config)

    @staticmethod
    def stamp(config: Config) -> dict[str, tuple[int, int] | None]:
        return file_stamps([*config.files, *{p.parent for p in config.files}])

    def reset(self) -> None:
        """The running config was just loaded from the files: they say what it says."""
        self._stamps = self.stamp(self.parts.running.config)
        self.status.disk_config = {"stale": False}

    def changed(self) -> bool:
        """The files' stamps moved since the last look (for filesystems without events)."""
        return self.stamp(self.parts.running.config) != self._stamps

    def check(self) -> None:
        """Load the config on disk beside the running one, only to say whether it differs."""
        config, generation = self.parts.running.get()
        self._stamps = self.stamp(config)
        errors: list[str] = []
        try:
            disk: Config | None = load_config(self.status.config_path)
        except ConfigError as err:
            disk, errors = None, [str(p) for p in err.problems]
        except Exception as err:  # never let a look at the disk hurt the running daemon
            disk, errors = None, [repr(err)]
        stale = disk is None or disk.fingerprint != config.fingerprint
        was_stale = self.status.disk_config.get("stale")
        found: dict[str, Any] = {
            "stale": stale,
            "checked_at": utc_iso(self.parts.clock.now()),
            "loads": disk is not None,
            "errors": errors[:20],
        }
        self.status.disk_config = found
        if stale and not was_stale:
            verdict = (
                "it would load cleanly"
                if disk is not None
                else f"it has {len(errors)} problems (see survivor validate)"
            )
            log.warning(
                "config: changed on disk since generation %d was loaded; %s; "
                "`survivor reload` (SIGHUP) applies it",
                generation,
                verdict,
            )
        self.heartbeat.write_daemon_doc()


@dataclass(eq=False)
class Reloader:
    parts: Parts
    status: DaemonStatus
    heartbeat: Heartbeat
    on_disk: ConfigOnDisk
    event: Event

    def reload(self) -> bool:
        """Apply the config file, or keep the running one and say why; True when applied."""
        log.info("reloading configuration (SIGHUP) from %s", self.status.config_path)
        notify.reloading()
        self.status.mood = Mood.RELOADING
        try:
            ok = self._reload()
        except Exception as err:  # a bug must not take the running config down
            log.exception("reload failed unexpectedly; keeping the running config")
            self.status.last_reload = {
                "at": utc_iso(self.parts.clock.now()),
                "ok": False,
                "errors": [repr(err)],
            }
            ok = False
        finally:
            self.status.mood = Mood.RUNNING
        self.heartbeat.write_daemon_doc()
        generation = self.parts.running.generation
        if ok:
            log.info("scheduler ready: generation %d", generation)
            self.heartbeat.ready()
        else:
            notify.sd_notify("READY=1", f"STATUS=reload failed; running generation {generation}")
        return ok

    def _reload(self) -> bool:
        parts, status = self.parts, self.status
        now = parts.clock.now()
        try:
            new = load_config(status.config_path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("reload: %s", problem)
            generation = parts.running.generation
            log.error(
                "reload failed: %s; still running generation %d",
                counted(len(err.problems), "problem"),
                generation,
            )
            errors = [str(p) for p in err.problems]
            status.last_reload = {"at": utc_iso(now), "ok": False, "errors": errors}
            self.event("reload-failed", errors=errors, generation=generation)
            return False
        old = parts.running.config
        diff = diff_configs(old, new)
        refused = refused_instance_changes(old, new)
        generation = parts.running.swap(new, now)
        parts.reconcile(new)
        self.on_disk.reset()
        self.heartbeat.write_running_config()
        inst = new.instance
        check_cap = parts.check_cap(inst)
        if check_cap != parts.check_pool.size:
            parts.check_pool.resize(check_cap)
        if inst.alert_workers != parts.alert_pool.size:
            parts.alert_pool.resize(inst.alert_workers)
        remote = parts.apply_workers(new)
        if remote is not None:
            log.info("reload: %s", remote)
        status.last_reload = {
            "at": utc_iso(now),
            "ok": True,
            "errors": [],
            "diff": diff.summary(),
            "not_applied": refused,
        }
        self.event(
            "reload",
            generation=generation,
            fingerprint=new.fingerprint,
            diff=diff.summary(),
            not_applied=refused,
        )
        log.info("reload: generation %d: %s", generation, diff.summary())
        for what in refused:
            log.warning("reload: %s changed; restart the daemon to apply it", what)
        return True
