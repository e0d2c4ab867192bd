"""The README's and docs' shell blocks run as written against a running system.

Given: a copy of the project (its own .env.local and var/) whose .env.local names the test database and Redis db,
free ports and small pools.
When: every command of every ```bash block of README.md and docs/*.md runs in it, page by page, in the order a
reader meets them (README's `make up` first, `make down` last), each block in one shell as a reader would paste it.
Then: none fails, and what the pages say a command prints is what it prints (the rolling restart's steps, PONG,
the health API's fields, the webhook's answer). A command that cannot run here (one that follows a log for ever,
an interactive one, a placeholder) is listed below with the reason; every other command runs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.system.processes import database_url, free_port, wait_for
from tests.test_docs import PAGES, SHELLS, split_fences

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
OPERATING = ROOT / "docs" / "operating.md"

# Commands not run, by a pattern of the command, with the reason. Everything else runs.
NOT_RUN = {
    r"^make test\b": "the test suite itself",
    r"^make logs\b": "follows every log until Ctrl-C",
    r"supervisorctl .* tail -f ": "follows a log until Ctrl-C",
    r"manage\.py dbshell": "an interactive psql session",
    r"var/postgres/server\.log": "the project-local PostgreSQL's log; this system uses the test database",
    r"<program>": "a placeholder for a program's name",
    r"^make down && make up": "starts everything afresh (make down runs last, make up first)",
    r"^make down\b": "run last, after every other command",
    r"-m fakes\.smtp ": "an SMTP server in the foreground until Ctrl-C",
    r"\.\.\. make up": "a placeholder for the reader's other settings",
}
# The rolling restart's sample in docs/operating.md: each step's text before its timing.
SAMPLE_STEPS = [line.split(" ... ")[0] for language, lines in split_fences(OPERATING.read_text())[1]
                for line in lines if line.startswith("==> primary:")]


def check_restart(out: str) -> None:
    assert len(SAMPLE_STEPS) >= 4
    for step in SAMPLE_STEPS:
        assert step in out, f"the sample's step {step!r} is not in what make workers-restart printed:\n{out}"
    assert "rolling restart done in" in out, out


def check_health(out: str) -> None:
    text = OPERATING.read_text()
    sample = json.loads(re.search(r"/api/admin/workers/health\"\n```\n\n```json\n(.*?)\n```", text, re.DOTALL).group(1))
    assert set(json.loads(out)) == set(sample), out


def check_up(out: str) -> None:
    """README: it "prints where the admin, Flower and the webhook are, and how to log in"."""
    assert "Resilience is up" in out, out
    for what in ("Admin", "Flower", "Webhook"):
        assert re.search(rf"^  {what} +http|^  {what} +POST http", out, re.MULTILINE), (what, out)
    assert re.search(r"^ +user admin, password", out, re.MULTILINE), out


# What the pages say a command prints (a pattern of the command -> a check of its output).
EXPECTED = {
    r"^make up\b": check_up,
    r"^redis-cli (-u \S+ )?ping\b": lambda out: out.strip() == "PONG" or pytest.fail(out),
    r"^make workers-restart\b": check_restart,
    r"/api/admin/workers/health": check_health,
    r"/api/webhooks/clay": lambda out: json.loads(out)["success"] is True or pytest.fail(out),
    r"^make status\b": lambda out: ("RUNNING" in out and not re.search(r"FATAL|BACKOFF", out)) or pytest.fail(out),
}
# Run after a command so that the next ones meet the system the pages assume (all programs up).
AFTER = {r"supervisorctl .* stop (\S+)": "{ctl} start {0}"}


def blocks() -> list[tuple[str, list[str]]]:
    """(page, its block's commands: continuations joined, blank lines and comment lines dropped)."""
    found = []
    for path in PAGES:
        for language, lines in split_fences(path.read_text())[1]:
            if language in SHELLS:
                joined = "\n".join(lines).replace("\\\n", " ").split("\n")
                found.append((path.name, [line for line in joined if line.strip() and not line.lstrip().startswith("#")]))
    return found


def skipped(command: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, command)), None)


@pytest.fixture
def project(tmp_path, redis_client):
    """A copy of the project with its own .env.local and var/; `make down` (or supervisord's shutdown) after."""
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", ".env.local", "test-artifacts", ".pytest_cache", "__pycache__", "node_modules"))
    (project / ".venv").symlink_to(ROOT / ".venv")
    env_local = {
        "SECRET_KEY": "docs-run-" + "k" * 50, "CLAY_WEBHOOK_SECRET": "docs-run-webhook-secret",
        "FLOWER_BASIC_AUTH": "admin:docs-run-flower", "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
        "WEB_PORT": str(free_port()), "FLOWER_PORT": str(free_port()), "MOCK_MODE": "true", "LOG_LEVEL": "INFO",
        "LEAD_PROCESSING_CONCURRENCY": "1", "DELIVERY_CONCURRENCY": "1", "SITE_GENERATION_CONCURRENCY": "1",
        "EMAIL_SENDING_CONCURRENCY": "2",
    }
    (project / ".env.local").write_text("".join(f"{key}={value}\n" for key, value in env_local.items()))
    (project / ".env.local").chmod(0o600)
    yield project
    run(project, "make down", timeout=180)
    pid_file = project / "var" / "supervisord.pid"
    if pid_file.exists():  # make down failed: nothing may outlive the test
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def shell_env() -> dict[str, str]:
    """A reader's shell: no test settings, nothing but what a login gives."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "LOGNAME", "TERM", "TMPDIR")
    return {key: os.environ[key] for key in keep if key in os.environ}


def run(project: Path, script: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=project, env=shell_env() | env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def test_the_readme_and_docs_commands_run_as_written_on_a_running_system(project):
    from access.auth import create_token

    # The lists follow the pages: a stale entry says they changed.
    commands = [command for _, block in blocks() for command in block]
    assert [pattern for pattern in NOT_RUN if not any(re.search(pattern, c) for c in commands)] == []
    assert [pattern for pattern in EXPECTED if not any(re.search(pattern, c) for c in commands)] == []
    assert sum(1 for c in commands if not skipped(c)) >= 25

    _, token = create_token("docs-reader")
    ctl = ".venv/bin/supervisorctl -c deploy/supervisord.conf"
    ran, failures = [], []
    for page, block in blocks():
        commands = [c for c in block if not skipped(c)]
        if not commands:
            continue
        # One shell per block, as pasted: variables set on one line are used on the next. A marker before each
        # command splits the output into each command's share.
        script = "set -e\n"
        for i, command in enumerate(commands):
            script += f"echo '@@@ {i}'\n{command}\n"
            for pattern, after in AFTER.items():
                if match := re.search(pattern, command):
                    script += after.format(*match.groups(), ctl=ctl) + " >/dev/null\n"
        result = run(project, script, timeout=600, TOKEN=token)
        parts = re.split(r"^@@@ (\d+)\n", result.stdout, flags=re.MULTILINE)
        outputs = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
        last = max(outputs, default=-1)
        if result.returncode != 0:
            failures.append(f"{page}: `{commands[last]}` failed ({result.returncode}):\n"
                            f"{outputs.get(last, '')[-3000:]}\n{result.stderr[-3000:]}")
        for i, command in enumerate(commands[:last + 1]):
            ran.append(command)
            for pattern, check in EXPECTED.items():
                if re.search(pattern, command) and (result.returncode == 0 or i < last):
                    try:
                        check(outputs[i])
                    except (AssertionError, ValueError, KeyError, pytest.fail.Exception) as exc:
                        failures.append(f"{page}: `{command}` printed what the page does not say: {exc}")
        if page == "README.md" and any(c.startswith("make up") for c in commands) and result.returncode != 0:
            break  # nothing else can run
    print(f"\nran {len(ran)} commands of the pages")
    assert not failures, "\n\n".join(failures)
    assert any(c.startswith("make up") for c in ran) and any(c.startswith("make workers-restart") for c in ran)
    down = run(project, "make down", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert wait_for(lambda: not (project / "var" / "supervisord.pid").exists(), 30)
