"""Concurrent writers on PostgreSQL: appends take no shared lock, and the sequencer
integrates them into one gapless, valid chain, missing none."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.db import connection, connections, transaction

from audit import Category, record
from audit.models import AuditChainHead, AuditEntry
from audit.sequencer import integrate_pending, integration_delay
from audit.services import verify_chain
from tests.audit.tamper import execute, trigger_disabled

WRITERS = 8
# A tenth of bench/audit_append.py: the race, in seconds rather than minutes.
ENTRIES_EACH = 100


def append_entries(writer: int, start: threading.Barrier, count: int = ENTRIES_EACH) -> None:
    """One writer's appends, each its own transaction, from the barrier on (the bench
    runs the same writer at full size)."""
    try:
        start.wait()
        for number in range(count):
            # Autocommit: each record() is its own transaction, then its try to integrate.
            record(
                "bench.entry.appended",
                category=Category.TRANSACTION if number % 4 else Category.SECURITY,
                actor=f"writer-{writer}",
                data={"number": number},
            )
    finally:
        connection.close()


def _in_thread(work) -> None:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def _append_from_another_connection() -> None:
    _in_thread(
        lambda: record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
    )


@contextmanager
def chain_head_held() -> Iterator[None]:
    """Another connection holds the chain head's lock (a sequencer mid-batch, or a
    checkpoint being signed) until the block ends."""
    if not AuditChainHead.objects.exists():
        AuditChainHead.objects.create(pk=1)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM audit_auditchainhead WHERE id = 1 FOR UPDATE")
            yield
            cursor.execute("COMMIT")
    finally:
        holder.close()


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_append_one_gapless_chain():
    start = threading.Barrier(WRITERS)
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(append_entries, writer, start) for writer in range(WRITERS)]
        for future in futures:
            future.result()  # re-raises a writer's exception

    # Every writer has returned: each one's entry was integrated by itself or by the
    # holder it found, with no beat task and no verification to catch up.
    assert integration_delay().queued == 0
    total = WRITERS * ENTRIES_EACH
    sequences = list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    for stream, count in (("transaction", total * 3 // 4), ("security", total // 4)):
        positions = AuditEntry.objects.filter(stream=stream).order_by("position")
        assert list(positions.values_list("position", flat=True)) == list(range(1, count + 1))
    # One writer's appends, each committed before the next began, keep their order.
    for writer in range(WRITERS):
        mine = AuditEntry.objects.filter(actor_id=f"writer-{writer}").order_by("sequence")
        assert [entry.data["number"] for entry in mine] == list(range(ENTRIES_EACH))
    per_writer = AuditEntry.objects.filter(actor_id="writer-0").count()
    assert per_writer == ENTRIES_EACH
    report = verify_chain()
    assert report.ok, report.reason
    assert report.entries == total


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_then_a_tampered_entry_is_caught():
    start = threading.Barrier(4)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(append_entries, writer, start, 25) for writer in range(4)]:
            future.result()
    assert verify_chain().ok
    victim = AuditEntry.objects.get(stream="transaction", position=40)

    with trigger_disabled():
        execute("UPDATE audit_auditentry SET actor_id = 'writer-9' WHERE id = %s", [victim.pk])

    report = verify_chain(full=True)
    assert report.broken_at.pk == victim.pk
    assert "entry_hash does not match" in report.reason


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_appends_do_not_wait_for_the_chain_head_and_are_integrated_once_it_is_free():
    with chain_head_held():
        # Would block for ever if an append took the head's lock.
        for number in range(3):
            _in_thread(
                lambda number=number: record(
                    "bookings.booking.created",
                    category=Category.TRANSACTION,
                    actor=None,
                    data={"number": number},
                )
            )
        delay = integration_delay()
        assert delay.queued == 3
        assert delay.oldest_age is not None
        assert "3 entries waiting to be integrated" in delay.describe()

    assert integrate_pending() == 3
    assert integration_delay().queued == 0
    assert verify_chain().ok


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_entry_committed_after_the_holders_read_is_not_left_behind():
    """The holder read the queue (empty) and has not committed yet; a writer commits,
    finds the lock taken and leaves: the holder reads again once it has committed."""
    committed_meanwhile = []

    def commit_one_after_the_read(execute_sql, sql, params, many, context):
        result = execute_sql(sql, params, many, context)
        if "WHERE sequence IS NULL ORDER BY id" in sql and not committed_meanwhile:
            _append_from_another_connection()
            committed_meanwhile.append(AuditEntry.objects.using("default").count())
        return result

    record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
    assert integration_delay().queued == 0
    with connection.execute_wrapper(commit_one_after_the_read):
        integrate_pending()

    assert committed_meanwhile
    assert integration_delay().queued == 0
    assert AuditEntry.objects.filter(sequence__isnull=False).count() == 2
    assert verify_chain().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_append_leaves_no_gap():
    def confirm_then_fail() -> None:
        with transaction.atomic():
            record("bookings.booking.confirmed", category=Category.TRANSACTION, actor=None)
            raise RuntimeError("the booking could not be confirmed")

    record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
    with pytest.raises(RuntimeError):
        confirm_then_fail()
    record("bookings.booking.cancelled", category=Category.TRANSACTION, actor=None)

    assert list(AuditEntry.objects.order_by("sequence").values_list("sequence", "action")) == [
        (1, "bookings.booking.created"),
        (2, "bookings.booking.cancelled"),
    ]
    assert verify_chain().ok


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


@pytest.mark.connections
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_verification_does_not_hang_on_a_held_sequencer_lock(settings):
    """A session holding the sequencer's lock (stuck, or on purpose) makes verification
    wait AUDIT_INTEGRATION_WAIT_SECONDS, then verify what is chained and report the
    rest as queued, instead of hanging (an outside review found it waited for ever)."""
    import time

    from audit.sequencer import SEQUENCER_LOCK

    settings.AUDIT_INTEGRATION_WAIT_SECONDS = 0.5
    record("bookings.booking.created", category=Category.TRANSACTION, actor=None)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [SEQUENCER_LOCK])
        _append_from_another_connection()  # committed; its try finds the lock taken
        began = time.monotonic()
        report = verify_chain()
        waited = time.monotonic() - began
    finally:
        holder.close()  # the session's lock goes with it

    assert waited < 5, waited
    assert report.ok
    assert report.delay is not None
    assert report.delay.queued == 1
    assert verify_chain().delay.queued == 0  # the lock gone, the next run integrates it
