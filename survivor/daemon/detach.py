"""`survivor run --daemon`: detach with python-daemon for SysV init.

Order matters (see the python-daemon notes in the reference): parse the
config and take the flock pidfile *before* detaching, so the parent can still
print an error and exit non-zero; detach; only then set up logging and start
threads (a fork keeps only the calling thread). Explicit umask, working
directory and signal map: python-daemon's defaults (umask 0, SIGTERM raising
SystemExit, SIGTTOU ignored and inherited by every module) are wrong for us.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import daemon as pydaemon

from survivor.clock import Clock
from survivor.config import load_config
from survivor.daemon.daemon import EXIT_CONFIG, Daemon
from survivor.daemon.logsetup import setup_logging
from survivor.errors import ConfigError
from survivor.model.words import counted

log = logging.getLogger(__name__)


def run_detached(config_path: Path, clock: Clock, *, grace: float = 10.0) -> int:
    config_path = config_path.absolute()  # a reload must find it from "/"
    try:
        config = load_config(config_path)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(
            f"survivor: not starting: {counted(len(err.problems), 'configuration problem')}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    survivor = Daemon(config_path, clock, grace=grace)
    survivor.prepare(config)  # takes the pidfile lock: a second daemon fails here, visibly
    assert survivor.stores.pidfile.descriptors()
    context = pydaemon.DaemonContext(
        detach_process=True,
        umask=0o022,
        working_directory="/",
        files_preserve=survivor.stores.pidfile.descriptors(),
        # No handlers from python-daemon (its None means SIG_IGN, which every module
        # would inherit); our inbox records signals from start-up on.
        signal_map={},
        prevent_core=False,
    )
    with context:
        target = config.instance.log
        if target.target == "stderr":
            # stderr is /dev/null now: fall back to syslog so nothing is lost.
            from survivor.model.config import LogConfig

            target = LogConfig("syslog", target.level)
        setup_logging(target)
        log.info("detached as pid %d", os.getpid())
        survivor.inbox.install()
        survivor.start()
        return survivor.run()
