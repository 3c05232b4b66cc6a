"""What the operator writes and gets: certificate subjects, the rendered broker config, the
worker's file (errors with file:line), and `survivor validate` on a config with workers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from survivor.cli import main
from survivor.errors import ConfigError
from survivor.remote.certs import CertificateError, certificate_subject
from survivor.remote.workerconf import load_worker_config
from tests.remote.natskit import Pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    made = Pki(tmp_path_factory.mktemp("pki"))
    for name in ("scheduler", "dc1-a", "server"):
        made.issue(name)
    return made


def test_subject_is_read_as_nats_server_maps_it(pki: Pki, tmp_path: Path) -> None:
    assert certificate_subject(pki.root / "dc1-a.pem") == "CN=dc1-a"
    assert certificate_subject(pki.ca) == "CN=test-ca"
    (tmp_path / "k.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(CertificateError, match=r"k\.pem: not a valid X\.509"):
        certificate_subject(tmp_path / "k.pem")
    with pytest.raises(CertificateError, match="no PEM certificate"):
        certificate_subject(pki.root / "dc1-a.key")


def test_multi_attribute_subjects_follow_rfc_2253(tmp_path: Path) -> None:
    subprocess_args = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/C=DE/O=Acme, Inc/CN=dc1-a", "-keyout", "k", "-out", "c.pem",
    ]  # fmt: skip
    subprocess.run(subprocess_args, cwd=tmp_path, check=True, capture_output=True)
    assert certificate_subject(tmp_path / "c.pem") == r"CN=dc1-a,O=Acme\, Inc,C=DE"


def site_config(pki: Pki, root: Path) -> Path:
    config = root / "survivor.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            instance: {{name: main, state_dir: state, history_dir: history}}
            hosts: {{web1: {{}}}}
            classes: {{web: {{hosts: [web1], schedule: s}}}}
            schedules: {{s: [{{every: 5m}}]}}
            checks: {{disk: {{module: disk, hosts: all}}}}
            workers:
              broker: {{servers: ["tls://127.0.0.1:4222"], ca: {pki.ca},
                       cert: {pki.root}/scheduler.pem, key: {pki.root}/scheduler.key}}
              approved:
                dc1-a: {{subject: "CN=dc1-a"}}
                lonely: {{subject: "CN=lonely"}}
            worker_groups: {{dc1: {{workers: [dc1-a]}}}}
            placement: {{web: [dc1]}}
            """)
    )
    return config


def test_broker_config_renders_users_and_permissions(pki: Pki, tmp_path: Path) -> None:
    config = site_config(pki, tmp_path)
    args = ["--config", str(config), "broker-config", "--server-cert", str(pki.root / "server.pem"),
            "--server-key", str(pki.root / "server.key")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = result.output
    assert 'listen: "0.0.0.0:4222"' in text and "verify_and_map: true" in text
    assert f'ca_file: "{pki.ca}"' in text
    assert '{user: "CN=scheduler", permissions: {' in text
    assert 'publish: ["survivor.main.check.>"]' in text
    assert 'subscribe: ["_INBOX.>", "survivor.main.hb.>"]' in text
    assert 'subscribe: ["survivor.main.check.dc1 dc1"]' in text
    assert 'publish: ["survivor.main.hb.dc1-a"]' in text
    assert 'subscribe: {deny: [">"]}' in text  # lonely is in no group: subscribes nothing
    bad = CliRunner().invoke(main, [*args, "--listen", "nowhere"])
    assert bad.exit_code == 2 and "'nowhere' is not HOST:PORT" in bad.output


def test_validate_reports_certificates_and_placed_groups(pki: Pki, tmp_path: Path) -> None:
    config = site_config(pki, tmp_path)
    result = CliRunner().invoke(main, ["--config", str(config), "validate", "--no-modules"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["--config", str(config), "validate"])
    assert "(subject CN=scheduler)" in result.output
    assert "worker group dc1: OK (1 approved: dc1-a)" in result.output
    config.write_text(config.read_text().replace("scheduler.pem", "dc1-a.pem"))
    result = CliRunner().invoke(main, ["--config", str(config), "validate"])
    assert result.exit_code == 1
    assert "subject 'CN=dc1-a' is also worker 'dc1-a''s" in result.output


def worker_file(root: Path, pki: Pki, body: str) -> Path:
    path = root / "worker.yaml"
    path.write_text(body.format(ca=pki.ca, cert=pki.root / "dc1-a.pem", key=pki.root / "dc1-a.key"))
    return path


GOOD = """\
name: dc1-a
groups: [dc1]
broker: {{servers: ["tls://127.0.0.1:4222"], ca: {ca}, cert: {cert}, key: {key},
         subject_prefix: survivor.main}}
module_dir: mod
plugin_dirs: [/usr/lib/nagios/plugins]
concurrency: 7
"""


def test_worker_file_loads_with_paths_relative_to_it(pki: Pki, tmp_path: Path) -> None:
    cfg = load_worker_config(worker_file(tmp_path, pki, GOOD))
    assert (cfg.name, cfg.groups, cfg.concurrency) == ("dc1-a", ("dc1",), 7)
    assert cfg.module_dirs == (tmp_path / "mod",)
    assert cfg.broker.subject_prefix == "survivor.main"


def test_worker_file_problems_carry_file_and_line(pki: Pki, tmp_path: Path) -> None:
    body = GOOD.replace("name: dc1-a", "name: dc2-a").replace("concurrency: 7", "concurency: 7")
    path = worker_file(tmp_path, pki, body.replace("groups: [dc1]", "groups: [a.b]"))
    with pytest.raises(ConfigError) as caught:
        load_worker_config(path)
    found = [(p.line, p.message) for p in caught.value.problems]
    assert all(p.file == str(path) for p in caught.value.problems)
    assert any(line == 1 and "not the CN of its certificate" in m for line, m in found), found
    assert any(line == 2 and "'a.b' is not a NATS subject token" in m for line, m in found), found
    assert any(line == 7 and "did you mean 'concurrency'" in m for line, m in found), found


REPO = Path(__file__).resolve().parents[2]


def test_the_example_worker_file_loads(pki: Pki, tmp_path: Path) -> None:
    shutil.copytree(pki.root, tmp_path / "pki")
    shutil.copy(REPO / "etc" / "worker.yaml", tmp_path / "worker.yaml")
    cfg = load_worker_config(tmp_path / "worker.yaml")
    assert (cfg.name, cfg.groups, cfg.concurrency) == ("dc1-a", ("dc1",), 100)
    assert cfg.broker.cert == tmp_path / "pki" / "dc1-a.pem"


def test_worker_unit_is_notify_and_passes_systemd_analyze(tmp_path: Path) -> None:
    text = (REPO / "etc" / "survivor-worker@.service").read_text()
    assert "Type=notify" in text and "RestartPreventExitStatus=78" in text
    assert "worker --config /etc/survivor/worker-%i.yaml" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "survivor-worker@dc1-a.service"
    unit.write_text(text.replace("/usr/local/bin/survivor", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "survivor-worker" not in done.stderr, done.stderr


def test_without_workers_nats_is_never_imported(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from survivor.config import load_config\n"
        "import survivor.cli.remote_cmds, survivor.remote.worker\n"
        f"load_config(Path({str(REPO / 'etc' / 'survivor.yaml')!r}))\n"
        "assert 'nats' not in sys.modules, 'nats imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
