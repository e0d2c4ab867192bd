"""The default set-up (issue 9, items 1-3 and 12): deploy/up_helper.py's .env.local handling and database
commands, the shell helpers of deploy/services.sh and deploy/common.sh run through bash, and the words
of enqueue_probes. The project-local cluster test starts a real PostgreSQL from the machine's binaries."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import contextlib
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from django.core.management import call_command
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]


def _load_helper():
    spec = importlib.util.spec_from_file_location("up_helper", ROOT / "deploy" / "up_helper.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


helper = _load_helper()


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    path = tmp_path / ".env.local"
    monkeypatch.setattr(helper, "ENV_FILE", path)
    for name in helper.setting_names():  # the test settings' own, as if make up were run in a clean shell
        monkeypatch.delenv(name, raising=False)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_env(**extra: str) -> dict[str, str]:
    """The environment without the test settings' variables, as a user's shell would have it."""
    dropped = set(helper.setting_names()) | {"DJANGO_SETTINGS_MODULE"}
    env = {name: value for name, value in os.environ.items() if name not in dropped and not name.startswith("TEST_")}
    return env | extra


def bash(script: str, cwd: Path = ROOT, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    """Run script in a shell without the test settings' variables, as a user's shell would be."""
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=user_env(**extra), capture_output=True, text=True,
                          timeout=timeout)


# --- .env.local ---------------------------------------------------------------------------------

KEY = "k" * 50

def test_a_new_env_file_names_a_project_local_postgresql(env_file, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("LOCAL_POSTGRES_PORT", "54444")
    assert helper.cmd_envfile() == 0
    values = dotenv_values(env_file)
    assert values["DATABASE_URL"].startswith("postgres://resilience:")
    assert values["DATABASE_URL"].endswith("@127.0.0.1:54444/resilience")
    assert len(values["DATABASE_URL"].split(":")[2].split("@")[0]) == 32  # a generated password
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_a_database_url_from_the_environment_is_not_replaced_by_a_generated_one(env_file, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://me:pw@db.example:5432/mine")
    helper.cmd_envfile()
    assert "DATABASE_URL" not in dotenv_values(env_file)


def test_an_old_env_file_without_database_url_gets_one(env_file, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env_file.write_text("SECRET_KEY=" + "k" * 50 + "\nCLAY_WEBHOOK_SECRET=s\nFLOWER_BASIC_AUTH=a:b\n# DATABASE_URL=\n")
    env_file.chmod(0o600)
    helper.cmd_envfile()
    assert dotenv_values(env_file)["DATABASE_URL"].startswith("postgres://resilience:")


def test_make_up_remembers_the_settings_it_was_given(env_file, monkeypatch, capsys):
    env_file.write_text(f"# comment kept\nSECRET_KEY={KEY}\nREDIS_URL=redis://127.0.0.1:6379/0\n# WEB_PORT=8000\n")
    env_file.chmod(0o600)
    monkeypatch.setenv("DATABASE_URL", "postgres://me:p%40ss@127.0.0.1:5432/mine")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("WEB_PORT", "8100")
    monkeypatch.setenv("ALLOWED_HOSTS", "jobs.example.com, localhost")  # a space: written quoted
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "once-only")
    monkeypatch.setenv("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/t")
    assert helper.cmd_remember() == 0
    values = dotenv_values(env_file)
    assert values["DATABASE_URL"] == "postgres://me:p%40ss@127.0.0.1:5432/mine"
    assert values["REDIS_URL"] == "redis://127.0.0.1:6390/2"
    assert values["WEB_PORT"] == "8100"
    assert values["ALLOWED_HOSTS"] == "jobs.example.com, localhost"
    assert "DJANGO_SUPERUSER_PASSWORD" not in values and "TEST_DATABASE_URL" not in values
    lines = env_file.read_text().splitlines()
    assert lines[:4] == ["# comment kept", f"SECRET_KEY={KEY}", "REDIS_URL=redis://127.0.0.1:6390/2", "WEB_PORT=8100"]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "DATABASE_URL" in capsys.readouterr().out
    # Given again, unchanged: nothing to write.
    before = env_file.read_text()
    assert helper.cmd_remember() == 0
    assert env_file.read_text() == before


@pytest.mark.parametrize("value", ['pa"ss', "back\\slash", "with #hash", "quote'single", "$HOME"])
def test_written_values_read_back_the_same(env_file, value):
    helper.set_env_values({"FLOWER_BASIC_AUTH": value}, "test")
    assert dotenv_values(env_file)["FLOWER_BASIC_AUTH"] == value


def test_a_value_with_a_line_break_is_refused(env_file):
    with pytest.raises(ValueError, match="line break"):
        helper.set_env_values({"FLOWER_BASIC_AUTH": "a\nSECRET_KEY=evil"}, "test")


def test_a_new_secret_key_keeps_the_old_one_and_the_links_signed_with_it(env_file, monkeypatch, capsys):
    old_key, new_key = "o" * 50, "n" * 50
    env_file.write_text(f"SECRET_KEY={old_key}\nCLAY_WEBHOOK_SECRET=s\nFLOWER_BASIC_AUTH=a:b\n"
                        "DATABASE_URL=postgres://resilience:pw@127.0.0.1:54329/resilience\n")
    env_file.chmod(0o600)
    monkeypatch.setenv("SECRET_KEY", new_key)
    monkeypatch.setenv("CLAY_WEBHOOK_SECRET", "new-webhook-secret")
    assert helper.cmd_remember() == 0
    values = dotenv_values(env_file)
    assert values["SECRET_KEY"] == new_key
    # Sent links were signed with the old effective key (EMAIL_SIGNING_KEY's default): it keeps signing them.
    assert values["EMAIL_SIGNING_KEY"] == old_key
    previous = env_file.with_name(".env.local.previous")
    assert stat.S_IMODE(previous.stat().st_mode) == 0o600
    assert dotenv_values(previous) == {"SECRET_KEY": old_key, "CLAY_WEBHOOK_SECRET": "s"}
    assert previous.read_text().startswith("# Replaced in .env.local by `make up` on 20")
    out = capsys.readouterr().out
    assert ".env.local.previous" in out and "EMAIL_SIGNING_KEY set to the old SECRET_KEY" in out

    # Rotated again: EMAIL_SIGNING_KEY is set now and stays; the history grows.
    monkeypatch.setenv("SECRET_KEY", "t" * 50)
    assert helper.cmd_remember() == 0
    assert dotenv_values(env_file)["EMAIL_SIGNING_KEY"] == old_key
    assert previous.read_text().count("# Replaced in .env.local") == 2
    assert f"SECRET_KEY={new_key}" in previous.read_text().splitlines()


# The examples: each is refused by start-up's own checks before .env.local is touched.
REFUSED = {
    "SECRET_KEY": ("short", "SECRET_KEY must be at least 32 characters"),
    "REDIS_URL": ("https://default:pw@eu1.upstash.io:6379", "REDIS_URL is an https:// URL"),
    "LEAD_MIN_SCORE": ("fifty", "LEAD_MIN_SCORE='fifty' is not a whole number"),
    "WEB_PORT": ("80a", "WEB_PORT='80a' is not a whole number"),
    "DATABASE_URL": ("sqlite:///var/db.sqlite3", "DATABASE_URL must be a postgres:// URL"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_make_up_refuses_a_bad_setting_before_writing_it(project, name):
    value, error = REFUSED[name]
    env_local = project / ".env.local"
    env_local.write_text(GOOD_ENV)
    env_local.chmod(0o600)
    before = env_local.read_bytes()
    result = bash("bash deploy/up.sh", cwd=project, **{name: value})
    assert result.returncode != 0
    assert env_local.read_bytes() == before
    assert not (project / ".env.local.previous").exists()
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"configuration error: {error}"), result.stderr
    assert result.stderr.endswith("(.env.local not changed)\n")
    if name == "REDIS_URL":
        assert "pw" not in result.stderr


# --- the running system's settings ------------------------------------------------------------

@pytest.fixture
def project(tmp_path):
    """A project directory whose code is this one's: .venv and deploy linked, its own .env.local and var/."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    (tmp_path / "var").mkdir()
    return tmp_path


GOOD_ENV = (
    "SECRET_KEY=" + "k" * 50 + "\nCLAY_WEBHOOK_SECRET=s\nFLOWER_BASIC_AUTH=a:b\n"
    "DATABASE_URL=postgres://resilience:pw@127.0.0.1:54329/resilience\nREDIS_URL=redis://127.0.0.1:6390/3\n"
)


def test_status_and_the_workers_commands_read_what_supervisord_started_with(project):
    (project / "var" / "supervisord.env").write_text(GOOD_ENV)
    (project / ".env.local").write_text(GOOD_ENV.replace("6390/3", "6390/4") + "DEBUG=maybe\nthis is not a line\n")
    script = ". deploy/services.sh; . deploy/common.sh; " \
        'load_running_settings && echo "redis=$S_REDIS_URL env_file=[$ENV_FILE]"; env_changed && echo changed'
    result = bash(script, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "redis=redis://127.0.0.1:6390/3 env_file=[]" in result.stdout
    assert "changed" in result.stdout


def test_load_settings_leaves_programs_reading_only_the_environment(project):
    (project / ".env.local").write_text(GOOD_ENV)
    script = ". deploy/services.sh; . deploy/common.sh; " \
        'load_settings >/dev/null && echo "env_file=[$ENV_FILE] db=$DATABASE_URL local=$S_DATABASE_LOCAL"'
    result = bash(script, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "env_file=[] db=postgres://resilience:pw@127.0.0.1:54329/resilience local=1" in result.stdout


# --- PostgreSQL: binaries, the project-local cluster, the probe -------------------------------

def test_no_postgresql_programs_and_no_way_to_install_them_is_one_line(tmp_path):
    tools = tmp_path / "bin"  # what the helper needs, and no pg_config, initdb or apt-get
    tools.mkdir()
    for tool in ("ls", "sort", "dirname", "readlink", "id"):
        (tools / tool).symlink_to(shutil.which(tool))
    script = (f". deploy/services.sh; can_apt_install() {{ false; }}; PATH={tools}; "
              f"PG_BIN_GLOB='{tmp_path}/*/bin'; pg_bindir DATABASE_URL")
    result = bash(script)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("PostgreSQL is not installed: install it (Debian/Ubuntu: sudo apt-get install postgresql")
    assert "or set DATABASE_URL to a running PostgreSQL" in result.stderr


def test_the_probe_says_when_nothing_answers():
    port = _free_port()
    result = subprocess.run([sys.executable, "deploy/up_helper.py", "pg-probe", f"postgres://postgres@127.0.0.1:{port}/x"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert result.stdout == f"no PostgreSQL answers at 127.0.0.1:{port}\n"


def test_the_probe_accepts_the_test_database(settings):
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    result = subprocess.run([sys.executable, "deploy/up_helper.py", "pg-probe", url], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout


@pytest.fixture
def cluster_dir():
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("no PostgreSQL server programs on this machine")
    # Short and reachable by the postgres OS user (when root runs it): not under pytest's private tmp.
    path = Path(tempfile.mkdtemp(prefix="rpg-", dir="/tmp"))
    path.chmod(0o755)
    yield path / "data"
    bash(f". deploy/services.sh; stop_local_postgres {path}/data")
    shutil.rmtree(path, ignore_errors=True)


def test_a_project_local_cluster_takes_passwords_over_tcp_and_matches_its_url(cluster_dir):
    port = _free_port()
    up = bash(f". deploy/services.sh; ensure_local_postgres {cluster_dir} {port} DATABASE_URL LOCAL_POSTGRES_PORT")
    assert up.returncode == 0, up.stderr
    assert f"starting the project-local PostgreSQL on 127.0.0.1:{port}" in up.stderr
    assert stat.S_IMODE(cluster_dir.stat().st_mode) == 0o700

    # Over TCP nobody gets in without a password: exactly what make test's probe reports.
    probe = subprocess.run([sys.executable, "deploy/up_helper.py", "pg-probe", f"postgres://postgres@127.0.0.1:{port}/x"],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert probe.returncode == 4
    assert "no password supplied" in probe.stdout

    url = helper.database_url(port)
    assert helper.cmd_local_db(str(cluster_dir), url, superuser=False) == 0
    assert helper.cmd_db_ping(url) == 0
    # A new password in the URL (a rewritten .env.local): the cluster follows it, the old one stops working.
    new_url = helper.database_url(port)
    assert helper.cmd_local_db(str(cluster_dir), new_url, superuser=False) == 0
    assert helper.cmd_db_ping(new_url) == 0
    with redirect_stdout(io.StringIO()) as out:
        assert helper.cmd_db_ping(url) == 4
    assert "password authentication failed" in out.getvalue()

    # Started again: already running, nothing to do; stopped: nothing listens any more.
    again = bash(f". deploy/services.sh; ensure_local_postgres {cluster_dir} {port} DATABASE_URL LOCAL_POSTGRES_PORT")
    assert again.returncode == 0 and again.stderr == ""
    down = bash(f". deploy/services.sh; stop_local_postgres {cluster_dir} && local_postgres_running {cluster_dir} || echo stopped")
    assert down.stdout.strip() == "stopped"
    with redirect_stdout(io.StringIO()):
        assert helper.cmd_db_ping(new_url) == 3


def test_a_port_taken_by_another_program_is_one_line(cluster_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = bash(f". deploy/services.sh; ensure_local_postgres {cluster_dir} {port} DATABASE_URL LOCAL_POSTGRES_PORT")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"port {port} on 127.0.0.1 is taken by another program: stop it, or set LOCAL_POSTGRES_PORT to a free port")


def test_make_test_runs_on_a_cluster_of_its_own_when_the_machine_postgresql_wants_a_password(cluster_dir, settings):
    # The "machine's" PostgreSQL: one that asks for a password over TCP, as Debian's default set-up does.
    machine_port, own_port = _free_port(), _free_port()
    up = bash(f". deploy/services.sh; ensure_local_postgres {cluster_dir} {machine_port} X Y")
    assert up.returncode == 0, up.stderr
    # A project of its own (its var/ receives the throwaway cluster), with this project's code.
    project = cluster_dir.parent / "project"
    project.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("var", ".git", ".env.local", "test-artifacts", ".pytest_cache"):
            (project / entry.name).symlink_to(entry)
    result = bash("bash deploy/run-tests.sh tests/leads/test_services.py -q -p no:cacheprovider", cwd=project,
                  timeout=300, TEST_MACHINE_DATABASE_URL=f"postgres://postgres@127.0.0.1:{machine_port}/resilience",
                  TEST_LOCAL_POSTGRES_PORT=str(own_port), TEST_REDIS_URL=settings.REDIS_URL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert " passed" in result.stdout and "error" not in result.stdout.lower()
    assert result.stderr.splitlines()[0] == (
        f"make test: the PostgreSQL at 127.0.0.1:{machine_port} does not let postgres in (fe_sendauth: no password "
        f"supplied): the tests run on a throwaway PostgreSQL in var/postgres-test (127.0.0.1:{own_port}; "
        "TEST_DATABASE_URL chooses another)")
    # Stopped when the tests end.
    assert not (project / "var" / "postgres-test" / "postmaster.pid").exists()


@pytest.fixture
def closed_project():
    """A project with this one's code under a mode-700 parent, as root's clone under /root on a fresh server: the
    postgres OS user, which the project-local PostgreSQL runs as, cannot enter it. make down and the removal of
    the cluster's data after."""
    if os.geteuid() != 0:
        pytest.skip("as another user than root the project-local PostgreSQL runs as that user, inside the project")
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("no PostgreSQL server programs on this machine")
    if subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode != 0:
        pytest.skip("no postgres OS user")
    parent = Path(tempfile.mkdtemp(prefix="rx-", dir="/tmp"))  # mode 700, as /root is
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700
    project = parent / "clone"
    (project / "var").mkdir(parents=True)
    (project / ".venv").symlink_to(ROOT / ".venv")
    (project / "deploy").symlink_to(ROOT / "deploy")
    yield project
    link = project / "var" / "postgres"
    data = Path(os.readlink(link)) if link.is_symlink() else None
    down = bash("bash deploy/down.sh", cwd=project, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    if data is not None and data.parent.parent == Path("/var/lib/resilience"):
        shutil.rmtree(data.parent, ignore_errors=True)
        with contextlib.suppress(OSError):
            data.parent.parent.rmdir()  # only when no other clone has a cluster there
    shutil.rmtree(parent, ignore_errors=True)


def _local_env(project: Path) -> tuple[str, str]:
    """.env.local naming a project-local PostgreSQL (and Redis) on free ports; (its DATABASE_URL, its REDIS_URL)."""
    port, redis_port = _free_port(), _free_port()
    database, redis_url = f"postgres://resilience:pw@127.0.0.1:{port}/resilience", f"redis://127.0.0.1:{redis_port}/0"
    text = GOOD_ENV.replace("postgres://resilience:pw@127.0.0.1:54329/resilience", database)
    text = text.replace("redis://127.0.0.1:6390/3", redis_url) + f"LOCAL_POSTGRES_PORT={port}\n"
    (project / ".env.local").write_text(text)
    (project / ".env.local").chmod(0o600)
    return database, redis_url


def test_make_up_runs_its_postgresql_from_a_clone_the_postgres_user_cannot_enter(closed_project):
    database, _ = _local_env(closed_project)
    result = bash('. deploy/services.sh; . deploy/common.sh; load_settings && ensure_app_postgres && '
                  'echo "note: $DATABASE_NOTE"', cwd=closed_project, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr

    # The data where the postgres OS user reaches it, one place per clone; the project knows it as var/postgres.
    link = closed_project / "var" / "postgres"
    assert link.is_symlink()
    digest = hashlib.sha256(str(closed_project.resolve()).encode()).hexdigest()[:12]
    data = Path("/var/lib/resilience") / digest / "postgres"
    assert Path(os.readlink(link)) == data
    assert (data / "PG_VERSION").exists() and stat.S_IMODE(data.stat().st_mode) == 0o700
    assert f"the postgres OS user cannot enter {closed_project / 'var'}: the project-local PostgreSQL keeps its " \
           f"data in {data} (var/postgres links there; LOCAL_POSTGRES_HOME chooses another place)" in result.stderr
    assert f"note: project-local PostgreSQL, data in {data} (var/postgres links there); make down stops it" \
        in result.stdout
    # Everything else stays in the project.
    assert not (data.parent / "log").exists() and sorted(p.name for p in data.parent.iterdir()) == ["postgres"]
    assert helper.cmd_db_ping(database) == 0

    # Again: it runs, nothing to say; make down finds it through the link and stops it.
    again = bash(". deploy/services.sh; . deploy/common.sh; load_settings && ensure_app_postgres", cwd=closed_project)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    down = bash("bash deploy/down.sh", cwd=closed_project, timeout=120)
    assert "PostgreSQL stopped" in down.stdout, down.stdout + down.stderr
    with redirect_stdout(io.StringIO()):
        assert helper.cmd_db_ping(database) == 3


def test_each_cluster_of_a_closed_clone_gets_a_place_of_its_own(closed_project):
    """make up's, make test's throwaway and make chaos's clusters of one clone never share a directory."""
    digest = hashlib.sha256(str(closed_project.resolve()).encode()).hexdigest()[:12]
    base = Path("/var/lib/resilience") / digest
    try:
        result = bash(". deploy/services.sh; for d in var/postgres-test var/chaos/postgres; do "
                      "mkdir -p $(dirname $d); local_postgres_place $d; done", cwd=closed_project)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [str(base / "postgres-test"), str(base / "chaos-postgres")]
        assert Path(os.readlink(closed_project / "var" / "chaos" / "postgres")) == base / "chaos-postgres"
    finally:
        shutil.rmtree(base, ignore_errors=True)
        with contextlib.suppress(OSError):
            base.parent.rmdir()  # only when no other clone has a cluster there


def test_local_postgres_home_puts_the_cluster_where_it_says(project, tmp_path):
    home = tmp_path / "elsewhere" / "pg"
    result = bash(f". deploy/services.sh; local_postgres_place var/postgres {home}", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{home}\n"
    assert Path(os.readlink(project / "var" / "postgres")) == home
    # A cluster of the project's own in var/postgres is never silently set aside.
    (project / "var" / "postgres").unlink()
    (project / "var" / "postgres").mkdir()
    (project / "var" / "postgres" / "PG_VERSION").write_text("15\n")
    refused = bash(f". deploy/services.sh; local_postgres_place var/postgres {home}", cwd=project)
    assert refused.returncode == 1 and refused.stderr.startswith("var/postgres holds a cluster of its own")


def test_local_postgres_home_must_be_an_absolute_path(project):
    (project / ".env.local").write_text(GOOD_ENV + "LOCAL_POSTGRES_HOME=pg-data\n")
    (project / ".env.local").chmod(0o600)
    result = bash(". deploy/services.sh; . deploy/common.sh; load_settings", cwd=project)
    assert result.returncode != 0
    assert result.stderr == "configuration error: LOCAL_POSTGRES_HOME must be an absolute path (got 'pg-data')\n"


def test_make_workers_says_what_it_leaves_running_when_it_stops(closed_project):
    _, redis_url = _local_env(closed_project)
    # manage.py stands in for Django: migrate does nothing, run_workers_dev waits for Ctrl-C and stops as it does.
    (closed_project / "manage.py").write_text(
        "import pathlib, sys, time\n"
        "if sys.argv[1] == 'run_workers_dev':\n"
        "    pathlib.Path('var/dev-ready').touch()\n"
        "    try:\n"
        "        time.sleep(120)\n"
        "    except KeyboardInterrupt:\n"
        "        print('stopped dev (exit 0)', flush=True)\n")
    workers = subprocess.Popen(["bash", "deploy/workers.sh", "dev"], cwd=closed_project, env=user_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (closed_project / "var" / "dev-ready").exists():
            assert workers.poll() is None and time.monotonic() < deadline, workers.communicate(timeout=10)
            time.sleep(0.2)
        os.killpg(workers.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        out, err = workers.communicate(timeout=60)
    finally:
        if workers.poll() is None:
            os.killpg(workers.pid, signal.SIGKILL)
    assert workers.returncode == 0, out + err
    data = Path(os.readlink(closed_project / "var" / "postgres"))
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    assert out.splitlines()[-1] == (
        f"==> make workers stopped; still running: the project-local PostgreSQL (127.0.0.1:"
        f"{helper._read_env_file(closed_project / '.env.local')['LOCAL_POSTGRES_PORT']}, data in {data}); the "
        f"project-local redis-server (redis://127.0.0.1:{port}/0, data in var/redis). make down stops them"), out
    down = bash("bash deploy/down.sh", cwd=closed_project, timeout=120)
    assert "PostgreSQL stopped" in down.stdout and "redis-server stopped" in down.stdout, down.stdout + down.stderr


# --- the admin login that make up prints ------------------------------------------------------

@pytest.mark.django_db
def test_the_admin_login_line_is_checked_against_the_current_database(tmp_path, settings, monkeypatch, capsys):
    from django.contrib.auth import get_user_model

    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    settings.VAR_DIR = tmp_path
    get_user_model().objects.create_superuser("admin", "", "the-right-one")
    credentials = tmp_path / "admin-credentials.txt"
    credentials.write_text("# header\nusername=admin\npassword=the-right-one\n")
    helper.cmd_admin_login()
    assert capsys.readouterr().out.startswith("user admin, password in ")

    # Written for another database (make up was run against it before): not offered as the way in.
    credentials.write_text("username=admin\npassword=from-another-database\n")
    helper.cmd_admin_login()
    out = capsys.readouterr().out
    assert out.startswith("not the password in ") and "manage.py changepassword" in out


# --- enqueue_probes ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_enqueue_probes_prints_the_job_ids_and_where_to_watch_them(settings):
    from workers.models import Job

    settings.WEB_PORT = 8123
    out = io.StringIO()
    call_command("enqueue_probes", "2", "--queue", "delivery", stdout=out)
    text = out.getvalue()
    for job in Job.objects.filter(queue="delivery"):
        assert f"  {job.id}\n" in text
    assert "http://127.0.0.1:8123/admin/workers/job/?queue__exact=delivery" in text
    assert "Flower" in text
