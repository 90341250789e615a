"""``integration_deferred``: the entries of several audited transactions, each
committed queued as always, integrated once on the way out."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import Category, record
from audit.models import AuditEntry
from audit.sequencer import integration_deferred
from audit.services import verify_chain

pytestmark = pytest.mark.django_db(transaction=True)


def _confirm(number: int) -> None:
    with transaction.atomic():
        record(
            "bookings.booking.confirmed",
            category=Category.TRANSACTION,
            actor="payments.checkout",
            data={"number": number},
        )


def _queued() -> int:
    return AuditEntry.objects.filter(sequence__isnull=True).count()


def test_without_it_each_commit_integrates_its_entry():
    _confirm(1)

    assert _queued() == 0


def test_inside_entries_are_committed_queued_then_integrated_on_the_way_out():
    with integration_deferred():
        for number in range(3):
            _confirm(number)
        # Committed (a second connection would see them), waiting for their places.
        assert _queued() == 3

    assert _queued() == 0
    assert sorted(AuditEntry.objects.values_list("sequence", flat=True)) == [1, 2, 3]
    assert verify_chain().ok


def test_nested_uses_integrate_once_at_the_outermost_exit():
    with integration_deferred():
        with integration_deferred():
            _confirm(1)
        assert _queued() == 1
        _confirm(2)

    assert _queued() == 0


def _first_step_then_fail() -> None:
    with integration_deferred():
        _confirm(1)
        raise RuntimeError("the handler failed after its first step")


def test_an_exception_inside_still_integrates_what_was_committed():
    with pytest.raises(RuntimeError):
        _first_step_then_fail()

    assert _queued() == 0


def test_a_caller_transaction_commits_later_and_integrates_then():
    with transaction.atomic():
        with integration_deferred():
            _confirm(1)
        assert _queued() == 1  # nothing committed yet: nothing asked for

    assert _queued() == 0


@pytest.mark.postgres
def test_one_integration_for_the_whole_unit():
    with CaptureQueriesContext(connection) as queries, integration_deferred():
        for number in range(3):
            _confirm(number)

    tries = [query for query in queries if "pg_try_advisory_lock" in query["sql"]]
    assert len(tries) == 1
