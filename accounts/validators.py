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


# The zero-width non-joiner and joiner (Cf) are part of how some scripts spell a name:
# Persian writes "mi-khaham" with a non-joiner between two letters. Between two letters
# (or a letter's marks) they are kept; anywhere else they hide nothing but themselves
# and are refused like the rest.
JOINERS = frozenset("\u200c\u200d")


def _refused_at(text: str, index: int) -> bool:
    character = text[index]
    if character in JOINERS and 0 < index < len(text) - 1:
        before, after = unicodedata.category(text[index - 1]), unicodedata.category(text[index + 1])
        if before[0] in "LM" and after[0] == "L":
            return False
    return unicodedata.category(character) in REFUSED_CATEGORIES


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a character of REFUSED_CATEGORIES (a joiner between two
    letters excepted)."""
    return any(_refused_at(text, index) for index in range(len(text)))


def without_control_characters(text: str) -> str:
    """``text`` without the characters of REFUSED_CATEGORIES (a joiner between two
    letters excepted): for names given elsewhere (a Calendly invitee's), which are
    kept, not refused."""
    return "".join(c for index, c in enumerate(text) if not _refused_at(text, index))


# Letters that draw nothing (Hangul fillers) and the blank braille pattern: a name made
# of them looks empty. Combining marks stack: more than a few on one letter garble the
# lines above and below it.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
MAX_COMBINING_MARKS = 4

BLANK_NAME_MESSAGE = "A name needs at least one visible letter or digit."
STACKED_MARKS_MESSAGE = f"A letter may carry at most {MAX_COMBINING_MARKS} accents."


def looks_blank(text: str) -> bool:
    """Whether ``text`` has no letter or digit that shows."""
    return not any(unicodedata.category(c)[0] in "LN" and c not in BLANK_LETTERS for c in text)


def has_stacked_marks(text: str) -> bool:
    """Whether some character in ``text`` carries more than MAX_COMBINING_MARKS marks."""
    run = 0
    for c in text:
        run = run + 1 if unicodedata.category(c) in ("Mn", "Me") else 0
        if run > MAX_COMBINING_MARKS:
            return True
    return False
