"""resilience.logfiles: owner-only files whatever the umask (an older version's 0644 tightened), and
log lines that stay one line."""
import io
import logging
import logging.config
import os
import stat

from django.conf import settings

from resilience.logfiles import OneLineFormatter, OwnerOnlyRotatingFileHandler, write_owner_only


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_log_left_world_readable_is_tightened_when_the_handler_opens_it(tmp_path):
    path = tmp_path / "web-access.log"
    path.write_text("an older line\n")
    path.chmod(0o644)
    handler = OwnerOnlyRotatingFileHandler(path, maxBytes=1000, backupCount=1, delay=True)
    try:
        handler.emit(logging.makeLogRecord({"msg": "a new line"}))
    finally:
        handler.close()
    assert mode(path) == 0o600 and path.read_text() == "an older line\na new line\n"


def test_write_owner_only_under_a_permissive_umask(tmp_path):
    old_umask = os.umask(0)
    try:
        write_owner_only(tmp_path / "state" / "workers-dev.pid", b"123\n")
        existing = tmp_path / "existing"
        existing.write_bytes(b"old")
        existing.chmod(0o666)
        write_owner_only(existing, b"new")
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "state" / "workers-dev.pid") == 0o600 and mode(tmp_path / "state") == 0o700
    assert mode(existing) == 0o600 and existing.read_bytes() == b"new"


def test_every_control_character_is_escaped_and_printable_text_is_kept():
    formatter = OneLineFormatter("%(message)s")
    record = logging.makeLogRecord({"msg": "a\nb\rc\x1b[31md\x00e\x7ff\x9bg\u2028h\u202ei\tj caf\u00e9 \\ \""})
    assert formatter.format(record) == 'a\\nb\\rc\\x1b[31md\\x00e\\x7ff\\x9bg\\u2028h\\u202ei\\tj caf\u00e9 \\ "'


def test_the_console_log_keeps_a_tracebacks_lines_but_no_terminal_sequence():
    # The handler every program's log line goes through (settings.LOGGING's console, to supervisord).
    stream = io.StringIO()
    config = {**settings.LOGGING, "handlers": {**settings.LOGGING["handlers"], "console": {
        **settings.LOGGING["handlers"]["console"], "class": "logging.StreamHandler", "stream": stream}}}
    logging.config.dictConfig(config)
    try:
        try:
            raise ValueError("lead name \x1b]0;owned\x07\x1b[2J\rforged")
        except ValueError:
            logging.getLogger("tests.console").exception("could not store \x9b31mAda")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    text = stream.getvalue()
    assert not [char for char in text if char not in "\n\t" and (ord(char) < 0x20 or 0x7f <= ord(char) < 0xa0)]
    assert "could not store \\x9b31mAda\nTraceback (most recent call last):\n" in text
    assert "lead name \\x1b]0;owned\\x07\\x1b[2J\\rforged" in text
