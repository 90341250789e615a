"""Concurrent writers on PostgreSQL append one gapless, valid chain."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from audit import Category, record
from audit.models import AuditEntry
from audit.services import verify_chain

WRITERS = 8
# A tenth of bench/audit_appends.py: the race, in seconds rather than minutes.
ENTRIES_EACH = 100


def append_entries(writer: int, start: threading.Barrier, count: int = ENTRIES_EACH) -> None:
    """One writer's appends, each its own transaction, from the barrier on (the bench
    runs the same writer at full size)."""
    try:
        start.wait()
        for number in range(count):
            # Autocommit: each record() is its own transaction.
            record(
                "bench.entry.appended",
                category=Category.TRANSACTION,
                actor=f"writer-{writer}",
                data={"number": number},
            )
    finally:
        connection.close()


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_append_one_gapless_chain():
    start = threading.Barrier(WRITERS)
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(append_entries, writer, start) for writer in range(WRITERS)]
        for future in futures:
            future.result()  # re-raises a writer's exception

    total = WRITERS * ENTRIES_EACH
    sequences = list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    per_writer = AuditEntry.objects.filter(actor_id="writer-0").count()
    assert per_writer == ENTRIES_EACH
    report = verify_chain()
    assert report.ok, report.reason
    assert report.entries == total


def _append_from_another_connection() -> None:
    def append() -> None:
        try:
            record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
        finally:
            connection.close()

    writer = threading.Thread(target=append)
    writer.start()
    writer.join()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_append_during_verification_is_not_reported_as_tampering():
    for _ in range(3):
        record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
    appended = []

    def append_once_the_walk_has_started(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        # The moment a request commits an entry while the periodic check is walking.
        if "audit_auditentry" in sql and not appended:
            appended.append(sql)
            _append_from_another_connection()
        return result

    with connection.execute_wrapper(append_once_the_walk_has_started):
        report = verify_chain()

    assert appended
    assert report.ok, report.reason
    assert verify_chain().entries == 4
