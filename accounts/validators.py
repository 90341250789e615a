"""Checks shared by the names people give: their own (sign-up, the account page), their
API tokens', and the names Calendly gives us for invitees (cleaned, not refused).

A name is shown to others (a builder's "Booked by …" line, a token list), so it must
read as what it is: a right-to-left override (U+202E) or an invisible isolate would
let "Nora" display as someone else's name, and a control character can break the line
or the terminal that shows it.
"""

from __future__ import annotations

import unicodedata

# Control (Cc) and format (Cf: direction marks, overrides and isolates, zero-width
# characters, the soft hyphen), surrogates (Cs), and the line and paragraph separators
# (Zl, Zp) that break a line as a newline does.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

CONTROL_CHARACTERS_MESSAGE = (
    "A name cannot hold control characters (such as invisible or text-direction marks)."
)


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a character of REFUSED_CATEGORIES."""
    return any(unicodedata.category(character) in REFUSED_CATEGORIES for character in text)


def without_control_characters(text: str) -> str:
    """``text`` without the characters of REFUSED_CATEGORIES: for names given
    elsewhere (a Calendly invitee's), which are kept, not refused."""
    return "".join(c for c in text if unicodedata.category(c) not in REFUSED_CATEGORIES)
