"""Text that others give us (a lead's name, a company), made safe to show where a person reads it."""
from __future__ import annotations

import re
import unicodedata

# RFC 2047 encoded words ("=?utf-8?q?...?="), leniently: some mail clients decode them even with
# spaces inside, so a value that merely looks like one would be shown as what it decodes to.
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bq]\?.*?\?=", re.IGNORECASE)


def visible_text(value: str) -> str:
    """`value` without invisible format characters (Unicode category Cf: bidi overrides and isolates,
    zero-width spaces and joiners, the BOM, soft hyphens) or control characters, whitespace runs
    made one space. Bidi controls reorder what follows them ("Jane\u202egnp.exe" reads
    "Janeexe.png"); zero-width ones make two different strings look the same."""
    kept = "".join(" " if unicodedata.category(char) == "Cc" else char for char in value
                   if unicodedata.category(char) != "Cf")
    return " ".join(kept.split())


def header_text(value: str) -> str:
    """`visible_text` for a mail header (Subject, a display name): encoded words removed too, since
    a mail client decodes them again, and what they decode to never passed through visible_text."""
    return visible_text(_ENCODED_WORD.sub("", visible_text(value)))
