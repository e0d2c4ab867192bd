"""Files under var/ that people read: log files with one line per record and no control character in
it, and files (logs, the dev mail sink's .eml, state files) readable by their owner only, whatever the
umask of whoever started the process. Standard library only: settings.LOGGING names these in every
process.

A request path is percent-decoded before it is logged, so `%0a` would otherwise end the line and let a
client write a convincing forged one, and a raw ESC would reach the operator's terminal through
`make logs`. Control characters come out as `\\n`, `\\x1b` ...
"""
from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

OWNER_ONLY = 0o600
OWNER_ONLY_DIRECTORY = 0o700


def write_owner_only(path: Path, data: bytes) -> None:
    """Write `data` to `path` (replacing what was there) as a file only its owner can read; its
    directory, when it has to be made, only its owner can enter."""
    path.parent.mkdir(mode=OWNER_ONLY_DIRECTORY, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    try:
        os.fchmod(fd, OWNER_ONLY)  # an existing file keeps its mode through O_TRUNC
    except PermissionError:  # someone else's file: the open succeeded, so writing still works
        pass
    with open(fd, "wb") as handle:
        handle.write(data)


def _escapes(extra: str = "") -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7f, 0xa0))}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    # Unicode's line and paragraph separators and the bidirectional overrides: a viewer may break the
    # line there, or show the text in another order than it was written.
    table.update({code: f"\\u{code:04x}" for code in (0x2028, 0x2029, *range(0x202a, 0x202f),
                                                      *range(0x2066, 0x206a))})
    table.update({ord(char): "\\" + char for char in extra})
    return table


_CONTROL = _escapes()
# Inside a field of the line: the backslash too (so a typed "\x1b" cannot pass for an escaped ESC) and
# the double quote that delimits the request line, referrer and user agent.
_FIELD = _escapes('\\"')


# For the logs supervisord writes from each program's output: a traceback keeps its lines, but nothing
# a terminal would run (ESC, CSI, a carriage return that hides what came before) reaches `make logs`.
_TERMINAL = {code: escape for code, escape in _CONTROL.items() if chr(code) not in "\n\t"}


def escape_control_characters(text: str) -> str:
    """`text` with every control character written as an escape: one line, nothing a terminal runs."""
    return text.translate(_CONTROL)


def escape_field(text: str) -> str:
    return text.translate(_FIELD)


class OneLineFormatter(logging.Formatter):
    """A formatter whose every record is exactly one line with no control character in it."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_control_characters(super().format(record))


class TerminalSafeFormatter(logging.Formatter):
    """A formatter whose output holds no control character but newlines and tabs."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_TERMINAL)


class OwnerOnlyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files (the log and each new one after a rotation) are 0600, in a
    directory made 0700 when it has to be made. A file left readable by an older version is tightened
    when it is opened."""

    def _open(self):
        os.makedirs(os.path.dirname(self.baseFilename), mode=OWNER_ONLY_DIRECTORY, exist_ok=True)
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, OWNER_ONLY)
        try:
            os.fchmod(fd, OWNER_ONLY)
        except PermissionError:  # someone else's file: the open succeeded, so writing still works
            pass
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)
