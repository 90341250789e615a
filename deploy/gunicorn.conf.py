"""Gunicorn for Slotpay, behind one reverse proxy on the same host (deploy/nginx.conf).

    gunicorn --config deploy/gunicorn.conf.py config.wsgi

Each value can be changed from the environment without editing this file (the
systemd unit deploy/systemd/slotpay-web.service sets none of them):

- ``GUNICORN_BIND``: where to listen (default ``127.0.0.1:8000``: the proxy only).
- ``WEB_CONCURRENCY``: worker processes (default 2 x CPUs + 1, at most 12). Each holds
  a PostgreSQL connection (``DATABASE_CONN_MAX_AGE``): count them against
  ``max_connections`` with the Celery workers'.
- ``GUNICORN_TIMEOUT``: seconds a request may take before its worker is replaced
  (default 30; a provider call times out well before, see bookings/calendly.py and
  payments/stripe_gateway.py).
- ``FORWARDED_ALLOW_IPS``: the proxies whose X-Forwarded-Proto gunicorn believes
  (default the loopback addresses). Django reads the client address and scheme
  itself, as far as ``TRUSTED_PROXY_COUNT`` says (config/settings.py, core/http.py).
"""

from __future__ import annotations

import os

_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cpus + 1, 12))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# The proxy keeps connections to us open between requests.
keepalive = 5
# Replace each worker now and then, so a slow leak never grows without bound.
max_requests = 2000
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Refuse oversized request lines and headers early (a webhook body is bounded by Django).
limit_request_line = 8190
limit_request_fields = 100

# The access log goes to stdout through Django's logging (the "gunicorn.access" logger
# in config/settings.py: JSON in production, masked). It names the path without its
# query string (%(U)s, never %(r)s or %(q)s): Calendly's redirect carries the client's
# name, email and answers there. No client address either (the proxy's log has it);
# the request id ties the line to the application's own log and to the proxy's.
accesslog = "-"
access_log_format = '"%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Django is loaded in each worker, not in the master before forking: nothing opened
# while loading (a database or Redis connection) is shared by every worker.
preload_app = False
proc_name = "slotpay-web"
