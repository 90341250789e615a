"""UUIDs are ids (booking references, Calendly's and Stripe's objects), never card
numbers: their digit groups pass the Luhn check often enough to be masked by mistake."""

import uuid

from core.masking import scrub, scrub_text

# Its groups "585-4986-8295-59" are 13 digits that pass the Luhn check.
LOOKS_LIKE_A_CARD = "b0a5c39f-a585-4986-8295-59ed8a576ccb"


def test_a_uuid_whose_digits_pass_for_a_card_is_kept():
    assert scrub_text(LOOKS_LIKE_A_CARD) == LOOKS_LIKE_A_CARD
    assert scrub({"disabled": LOOKS_LIKE_A_CARD}) == {"disabled": LOOKS_LIKE_A_CARD}
    assert scrub_text(f"subscription {LOOKS_LIKE_A_CARD.upper()} disabled") == (
        f"subscription {LOOKS_LIKE_A_CARD.upper()} disabled"
    )


def test_no_uuid_is_masked():
    values = [str(uuid.uuid4()) for _ in range(2000)]
    assert [value for value in values if scrub_text(value) != value] == []


def test_a_card_number_beside_a_uuid_is_still_masked():
    text = f"{LOOKS_LIKE_A_CARD} paid with 4242-4242-4242-4242, ref {LOOKS_LIKE_A_CARD}"
    assert scrub_text(text) == f"{LOOKS_LIKE_A_CARD} paid with [card], ref {LOOKS_LIKE_A_CARD}"
    assert scrub_text("4242 4242 4242 4242") == "[card]"
