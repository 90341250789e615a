"""Out-of-suite harnesses: a launcher for the real services and the ingest benchmark.

Nothing in the application imports this package. Subprocesses started by
:mod:`bench.stack` run with ``DJANGO_SETTINGS_MODULE=bench.settings``, which adds
this package as an app so that its ``webhook_handlers`` module registers a handler.
"""
