import logging

from core.http import current_request_id


class RequestContextFilter(logging.Filter):
    """Put the current request id (or "-") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # Django logs 4xx/5xx responses ("django.request") after the middleware has
            # returned, with the request attached: take the id from there.
            record.request_id = (
                current_request_id.get()
                or getattr(getattr(record, "request", None), "request_id", None)
                or "-"
            )
        return True
