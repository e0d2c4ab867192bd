"""The README and docs/ keep pointing at things that exist: a section moved, a command renamed or a module
moved fails here instead of leaving a reader at a dead end.

- every relative link resolves, and every #anchor names a heading of its page (GitHub's anchors);
- every page of docs/ is linked from the README and opens with who it is for;
- in the ```sh / ```bash / ```console blocks, every `make TARGET` is a target of the Makefile, every
  `manage.py COMMAND` a management command whose --help builds, every `python -m MODULE` a module that exists,
  every program given to supervisorctl and every log read from var/log/ one that deploy/supervisord.conf has, the
  rolling restart's sample counts a pool's workers, and no command fixes WEB_PORT's or FLOWER_PORT's default.

tests/system/test_docs_commands.py then runs those blocks as written against a running system.
"""
from __future__ import annotations

import configparser
import importlib.util
import re
import shlex
from collections import Counter
from pathlib import Path

from django.core.management import get_commands, load_command_class

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
DOCS = sorted((PROJECT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SHELLS = {"sh", "bash", "console", "shell"}


def split_fences(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines outside code blocks, and each code block as (its language, its lines)."""
    prose, blocks, block, language = [], [], None, ""
    for line in text.split("\n"):
        fence = FENCE.match(line)
        if block is None and fence:
            block, language = [], fence.group(2).lower()
        elif block is not None and fence and not fence.group(2):
            blocks.append((language, block))
            block = None
        elif block is not None:
            block.append(line)
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for line in split_fences(path.read_text())[0]:
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    return [target for line in split_fences(path.read_text())[0]
            for target in LINK.findall(CODE_SPAN.sub("", line))]


def broken_links(path: Path) -> list[str]:
    wrong = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):   # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            wrong.append(f"{path.name}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            wrong.append(f"{path.name}: {target}: no heading with that anchor in {dest.name}")
    return wrong


def shell_commands(path: Path) -> list[list[str]]:
    """Each command line of the page's shell blocks, as words (comments, prompts and continuations handled)."""
    commands = []
    for language, lines in split_fences(path.read_text())[1]:
        if language not in SHELLS:
            continue
        joined = "\n".join(lines).replace("\\\n", " ")
        for line in joined.split("\n"):
            line = re.sub(r"^\s*\$\s+", "", line)
            try:
                words = shlex.split(line, comments=True)
            except ValueError:                      # an unbalanced quote in a comment: words are enough
                words = line.split("#", 1)[0].split()
            if words:
                commands.append(words)
    return commands


def named_after(words: list[str], is_program) -> list[str]:
    """The word after each program word (`make X`, `manage.py X`, `python -m X`), options skipped."""
    found = []
    for i, word in enumerate(words[:-1]):
        if is_program(word, words[i - 1] if i else ""):
            rest = [w for w in words[i + 1:] if not w.startswith("-") and "=" not in w]
            if rest and rest[0] not in ("&&", "||", ";", "|"):
                found.append(rest[0])
    return found


def make_targets(words: list[str]) -> list[str]:
    return named_after(words, lambda word, _: word == "make")


def manage_commands(words: list[str]) -> list[str]:
    return named_after(words, lambda word, _: word == "manage.py" or word.endswith("/manage.py"))


def python_modules(words: list[str]) -> list[str]:
    found = []
    for i, word in enumerate(words[:-1]):
        if word == "-m" and i and re.search(r"(^|/)python(3(\.\d+)?)?$", words[i - 1]):
            found.append(words[i + 1])
    return found


def from_blocks(extract) -> dict[str, list[str]]:
    """name -> the pages that use it."""
    used: dict[str, list[str]] = {}
    for path in PAGES:
        for words in shell_commands(path):
            for name in extract(words):
                used.setdefault(name, []).append(path.name)
    return used


def makefile_targets() -> set[str]:
    targets = set()
    for line in (PROJECT / "Makefile").read_text().split("\n"):
        rule = re.match(r"^([^\s#$:=][^:=]*?)\s*:(?!=)", line)
        if rule:
            targets.update(rule.group(1).split())
    return targets


def test_anchors_follow_githubs_rules():
    assert slug("Speed: the ledger path beside plain Celery") == "speed-the-ledger-path-beside-plain-celery"
    assert slug("Celery's results (django-celery-results)") == "celerys-results-django-celery-results"
    assert slug("Memory: what runs where and why") == "memory-what-runs-where-and-why"
    assert slug("`workers/` and its registry") == "workers-and-its-registry"


def test_the_extractors_read_a_shell_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\n$ make up   # it's up\nDATABASE_URL=x make down && make status\n"
                    ".venv/bin/python manage.py pause_queue delivery --reason \"x\"   # pause\n"
                    ".venv/bin/python -m tests.emails.smtp_sink 2525 \\\n  --refuse 'rcpt:x'\n```\n"
                    "```python\nmake nothing\n```\n")
    words = shell_commands(page)
    assert [t for w in words for t in make_targets(w)] == ["up", "down", "status"]
    assert [c for w in words for c in manage_commands(w)] == ["pause_queue"]
    assert [m for w in words for m in python_modules(w)] == ["tests.emails.smtp_sink"]


def test_every_relative_link_and_anchor_resolves():
    assert sum(len(links(path)) for path in PAGES) > 50   # the reader found the links
    assert [wrong for path in PAGES for wrong in broken_links(path)] == []


def test_every_docs_page_is_linked_from_the_readme_and_says_whom_it_is_for():
    assert DOCS, "no docs/*.md"
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    assert [page.name for page in DOCS if page.resolve() not in linked] == []
    for page in DOCS:
        blocks = [b for b in page.read_text().split("\n\n") if b.strip()]
        assert blocks[0].startswith("# "), f"{page.name} opens without a title"
        assert blocks[1].startswith("For "), f"{page.name} does not open by saying who it is for"


def test_every_make_target_in_the_shell_blocks_is_in_the_makefile():
    used = from_blocks(make_targets)
    assert {"up", "test"} <= set(used)
    targets = makefile_targets()
    assert {name: pages for name, pages in used.items() if name not in targets} == {}


def test_every_management_command_in_the_shell_blocks_exists_and_its_help_builds():
    used = from_blocks(manage_commands)
    assert "generate_test_leads" in used
    commands = get_commands()
    missing = {name: pages for name, pages in used.items() if name not in commands}
    assert missing == {}
    for name in used:
        # what `manage.py NAME --help` prints, without a process per command
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        assert parser.format_help().startswith("usage: manage.py " + name)


def test_every_python_module_in_the_shell_blocks_exists():
    used = from_blocks(python_modules)
    assert used, "no `python -m` found in the shell blocks"
    missing = {}
    for name, pages in used.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:     # a parent package is gone
            found = False
        if not found:
            missing[name] = pages
    assert missing == {}


# --- the shell blocks name what the running system has ------------------------------------------

def supervisor_names() -> tuple[dict[str, list[str]], set[str]]:
    """deploy/supervisord.conf's groups (name -> programs) and every program's name."""
    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read_string((PROJECT / "deploy" / "supervisord.conf").read_text())
    groups = {section.split(":", 1)[1]: parser[section]["programs"].split(",")
              for section in parser.sections() if section.startswith("group:")}
    programs = {section.split(":", 1)[1] for section in parser.sections()
                if section.startswith(("program:", "eventlistener:"))}
    return groups, programs


def supervisorctl_targets(words: list[str]) -> list[str]:
    """The programs a `supervisorctl ... start|stop|restart|tail|status|pid NAME` names."""
    found = []
    for i, word in enumerate(words):
        if word.endswith("supervisorctl"):
            rest = words[i + 1:]
            while rest[:1] == ["-c"]:
                rest = rest[2:]
            if rest and rest[0] in ("start", "stop", "restart", "tail", "status", "pid", "signal"):
                found += [w for w in rest[1:] if not w.startswith("-") and w not in ("&&", "||", ";", "|")][:1]
    return found


def test_every_program_supervisorctl_is_given_in_the_shell_blocks_exists():
    groups, programs = supervisor_names()
    used = from_blocks(supervisorctl_targets)
    assert "web" in used
    known = programs | {f"{group}:*" for group in groups} | {"all"} | \
        {f"{group}:{program}" for group, members in groups.items() for program in members}
    assert {name: pages for name, pages in used.items() if name not in known and not name.startswith("<")} == {}


def test_every_log_the_shell_blocks_read_is_one_the_system_writes():
    _, programs = supervisor_names()
    used = from_blocks(lambda words: [m.group(1) for w in words for m in [re.match(r"var/log/([^/<>]+)\.log$", w)] if m])
    assert "supervisord" in used
    assert {name: pages for name, pages in used.items()
            if name not in programs | {"supervisord", "web-access"}} == {}


def test_the_rolling_restart_sample_counts_a_pools_workers():
    groups, _ = supervisor_names()
    workers = [program for program in groups["primary"] if not program.startswith("dispatcher")]
    sample = [line for path in PAGES for language, lines in split_fences(path.read_text())[1] for line in lines
              if line.startswith("==> ") and "workers consume" in line]
    assert sample
    counts = {int(m.group(1)) for line in sample for m in [re.search(r"its (\d+) workers", line)] if m}
    assert counts == {len(workers)}, sample


def test_the_shell_blocks_use_the_configured_ports_and_pages_say_which_port_an_address_has():
    """WEB_PORT and FLOWER_PORT may be anything: a command reads them, prose says 8000/5555 are defaults."""
    fixed = {f"{path.name}: {' '.join(words)}" for path in PAGES for words in shell_commands(path)
             if any(re.search(r"127\.0\.0\.1:(8000|5555)\b|localhost:(8000|5555)\b", w) for w in words)
             and not any(w.startswith("PUBLIC_BASE_URL=") for w in words)}   # a value to choose, not an address to use
    assert fixed == set()
    for path in PAGES:
        text = path.read_text()
        for port, setting in (("8000", "WEB_PORT"), ("5555", "FLOWER_PORT")):
            if f"127.0.0.1:{port}" in text:
                assert setting in text, f"{path.name} gives 127.0.0.1:{port} without saying it is {setting}'s default"
