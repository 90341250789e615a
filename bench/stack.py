"""Start the real services as subprocesses: Redis, a Celery worker, beat, gunicorn,
and (for the chaos run, which restarts it) a private PostgreSQL cluster.

Used by the integration tests (tests/webhooks/test_worker_integration.py) and by the
ingest benchmark (bench/webhook_ingest.py), which need the pipeline as it runs in
production: separate web and worker processes, a real broker that can be stopped,
a worker that can be SIGKILLed. Each service is a :class:`Service` (start, wait until
ready, kill, restart) and :func:`running` starts several at once and always stops
them on the way out, also when the body raises.

Every subprocess is the leader of its own process group (``start_new_session``), so
stopping or killing it reaches its children too (prefork pool, gunicorn workers),
and nothing else is ever signalled. On Linux each leader also gets SIGTERM if the
process that started it dies, so an interrupted run leaves nothing behind.

The Django processes all run ``bench.settings`` (which registers the bench handler)
with the environment that :func:`service_env` builds: one database, one Redis, and
the same secrets everywhere (payloads are encrypted by the web process and decrypted
by the worker).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SETTINGS_MODULE = "bench.settings"
WORKER_QUEUE = "slotpay"


class ServiceError(RuntimeError):
    """A service did not start (the message ends with the tail of its log)."""


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout:.0f} s: {check!r}")
        time.sleep(interval)


# --- Configuration ------------------------------------------------------------------


def _fake_webhook_secret() -> str:
    # Built at run time from short groups so that no secret scanner mistakes it for
    # a real signing secret; it only ever signs the bench's own deliveries.
    return "whsec_FAKE-" + "-".join(secrets.token_hex(6) for _ in range(4))


@dataclass(frozen=True)
class Secrets:
    """Every secret the test profile would otherwise invent per process."""

    secret_key: str
    field_encryption_key: str
    blind_index_key: str
    stripe_api_key: str
    stripe_webhook_secret: str
    stripe_path_token: str
    calendly_api_token: str
    calendly_signing_key: str
    calendly_path_token: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            secret_key=secrets.token_urlsafe(50),
            field_encryption_key=Fernet.generate_key().decode(),
            blind_index_key=secrets.token_urlsafe(32),
            stripe_api_key=f"sk_test_bench{secrets.token_hex(12)}",
            stripe_webhook_secret=_fake_webhook_secret(),
            stripe_path_token=secrets.token_urlsafe(24),
            calendly_api_token=secrets.token_urlsafe(24),
            calendly_signing_key=secrets.token_urlsafe(32),
            calendly_path_token=secrets.token_urlsafe(24),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> Secrets:
        """The current process's values, so that it can sign for and read what the
        subprocesses store (the test process runs the same profile)."""
        return cls(
            secret_key=settings.SECRET_KEY,
            field_encryption_key=",".join(settings.FIELD_ENCRYPTION_KEY),
            blind_index_key=settings.BLIND_INDEX_KEY,
            stripe_api_key=settings.STRIPE_API_KEY,
            stripe_webhook_secret=settings.STRIPE_WEBHOOK_SECRETS[0],
            stripe_path_token=settings.STRIPE_WEBHOOK_PATH_TOKEN,
            calendly_api_token=settings.CALENDLY_API_TOKEN,
            calendly_signing_key=settings.CALENDLY_WEBHOOK_SIGNING_KEYS[0],
            calendly_path_token=settings.CALENDLY_WEBHOOK_PATH_TOKEN,
        )

    def env(self) -> dict[str, str]:
        return {
            "SECRET_KEY": self.secret_key,
            "FIELD_ENCRYPTION_KEY": self.field_encryption_key,
            "BLIND_INDEX_KEY": self.blind_index_key,
            "STRIPE_API_KEY": self.stripe_api_key,
            "STRIPE_WEBHOOK_SECRETS": self.stripe_webhook_secret,
            "STRIPE_WEBHOOK_PATH_TOKEN": self.stripe_path_token,
            "CALENDLY_API_TOKEN": self.calendly_api_token,
            "CALENDLY_WEBHOOK_SIGNING_KEYS": self.calendly_signing_key,
            "CALENDLY_WEBHOOK_PATH_TOKEN": self.calendly_path_token,
        }


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL for a Django ``DATABASES`` entry (PostgreSQL), e.g. the test DB."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{quote(name, safe='')}"))


def tagged(env: Mapping[str, str], application_name: str) -> dict[str, str]:
    """``env`` whose DATABASE_URL names its connections ``application_name``, so that
    pg_stat_activity tells the web processes' backends from the worker's."""
    parts = urlsplit(env["DATABASE_URL"])
    query = "&".join(filter(None, [parts.query, f"application_name={quote(application_name)}"]))
    return {**env, "DATABASE_URL": urlunsplit(parts._replace(query=query))}


def service_env(
    *,
    database_url: str,
    redis_url: str,
    secrets: Secrets,
    settings_module: str = SETTINGS_MODULE,
    **overrides: str | int | float,
) -> dict[str, str]:
    """The environment of every Django subprocess: this process's plus our settings.

    Tasks really go through the broker (CELERY_TASK_ALWAYS_EAGER=false); ``overrides``
    are further variables, e.g. ``WEBHOOK_PROCESSING_TIMEOUT_SECONDS=5``.
    ``settings_module``: ``bench.settings`` (the bench's stand-in handler) by default;
    ``tests.settings`` runs the domain's own handlers (bench/traffic.py).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        # Not the test runner's worker name either: tests.settings would move the Redis
        # URL given here to another database.
        if not key.endswith("_FILE")
        and key not in ("DJANGO_SETTINGS_MODULE", "ENVIRONMENT", "PYTEST_XDIST_WORKER")
    }
    pythonpath = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SENTRY_DSN": "",
            **secrets.env(),
        }
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


# --- Processes ----------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _become(user: str) -> Callable[[], None]:
    """A pre-exec step that drops root for ``user``, then asks for the parent's death
    signal (a change of user clears it, so it must come second)."""
    import pwd

    entry = pwd.getpwnam(user)

    def preexec() -> None:
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        _die_with_parent()

    return preexec


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Service:
    """One subprocess (and its process group), restartable, logging to a file.

    Subclasses say how to start (:meth:`command`) and when it is ready
    (:meth:`is_ready`). Each start writes a new log: ``<name>-<n>.log`` in ``workdir``.
    """

    name = "service"
    start_timeout = 60.0
    # Run as this user (the parent must be root), e.g. PostgreSQL refuses root.
    user: str | None = None

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = self.workdir / f"{self.name}-0.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    # -- life cycle --

    def start(self) -> Service:
        """Start without waiting; :meth:`wait_ready` waits.

        Start services from a thread that outlives them (the main thread): the
        parent-death signal is sent when the *thread* that started the process ends.
        """
        if self.alive():
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        self.log_path = self.workdir / f"{self.name}-{self.starts}.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own fixed commands)
                self.command(),
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._preexec(),  # noqa: PLW1509 (no threads run yet)
            )
        return self

    def _preexec(self) -> Callable[[], None]:
        return _become(self.user) if self.user else _die_with_parent

    def wait_ready(self, timeout: float | None = None) -> Service:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while not self.is_ready():
            if not self.alive():
                raise ServiceError(
                    f"{self.name} exited with {self.process and self.process.returncode} "
                    f"before it was ready; {self.log_path}:\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} not ready after {timeout or self.start_timeout:.0f} s; "
                    f"{self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        # The group id is the leader's pid; its children stay in the group after
        # the leader is gone, so the group is signalled even then.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def _group_gone(self) -> bool:
        if self.process is None:
            return True
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, nothing gets to clean up."""
        self._signal_group(signal.SIGKILL)
        self._reap(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``timeout``."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        if not self._reap(timeout=timeout):
            self._signal_group(signal.SIGKILL)
            self._reap(timeout=10)

    def _reap(self, timeout: float) -> bool:
        if self.process is None:
            return True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        while not self._group_gone():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return self.process.poll() is not None

    def restart(self, *, kill: bool = False) -> Service:
        """Stop (or kill) and start again with the same settings (same port)."""
        self.kill() if kill else self.stop()
        return self.start().wait_ready()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} log={self.log_path}>"


class RedisServer(Service):
    """A private redis-server on its own port: tests stop and restart it, never the
    shared one. No persistence: a restart is an empty broker, as after losing it."""

    name = "redis"
    start_timeout = 15.0

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, env=None)
        self.port = port or free_port()

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--loglevel",
            "warning",
        ]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def is_ready(self) -> bool:
        import redis

        try:
            client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        wait_until(lambda: not port_open(self.port), timeout=timeout)


POSTGRES_BIN = Path(os.environ.get("POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresCluster(Service):
    """A private PostgreSQL cluster (initdb into a new directory under /tmp) on its own
    port: the chaos run restarts it, never the machine's shared server.

    ``postgres`` runs in the foreground as the service's process; run as root (as
    here), it runs as the ``postgres`` user, whom initdb and the server insist on.
    :meth:`stop` is a fast shutdown (SIGINT: sessions are ended, nothing waits for
    clients to leave), :meth:`kill` a crash (recovery at the next start).
    :meth:`destroy` stops it and deletes the cluster.
    """

    name = "postgres"
    start_timeout = 30.0

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        super().__init__(workdir, env=None)
        self.port = port or free_port()
        self.settings = {"max_connections": 200, **(settings or {})}
        self.user = "postgres" if os.geteuid() == 0 else None
        # Not under ``workdir``: pytest's tmp_path sits in a directory only root enters.
        self.home = Path(tempfile.mkdtemp(prefix="slotpay-pg-", dir="/tmp"))
        self.datadir = self.home / "data"
        if self.user:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(self.home, entry.pw_uid, entry.pw_gid)
        self._initdb()

    def _initdb(self) -> None:
        result = subprocess.run(  # noqa: S603 (our own fixed command)
            [
                str(POSTGRES_BIN / "initdb"),
                "--pgdata",
                str(self.datadir),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=_become(self.user) if self.user else None,
        )
        if result.returncode:
            raise ServiceError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def command(self) -> list[str]:
        options = [f"--{key}={value}" for key, value in self.settings.items()]
        return [
            str(POSTGRES_BIN / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-k",
            str(self.home),
            "-c",
            "listen_addresses=127.0.0.1",
            *options,
        ]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def is_ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=1) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT), then SIGKILL whatever is left after ``timeout``."""
        if self.process is None:
            return
        self._signal_group(signal.SIGINT)
        if not self._reap(timeout=timeout):
            self._signal_group(signal.SIGKILL)
            self._reap(timeout=10)

    def destroy(self) -> None:
        """Stop the server and delete the cluster's directory."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


class CeleryWorker(Service):
    """``celery -A config worker`` on the application's queue, prefork pool.

    Gossip, mingle and heartbeats are off: they only slow start-up and the worker
    needs nothing from other nodes. Ready once it logs ``ready.``, which it does at
    the INFO level (the level it runs at, as deployed).
    """

    name = "worker"

    def __init__(self, workdir: Path, env: Mapping[str, str], *, concurrency: int = 2) -> None:
        super().__init__(workdir, env)
        self.concurrency = concurrency
        self.node = f"bench-{secrets.token_hex(4)}@%h"

    def command(self) -> list[str]:
        return [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--queues",
            WORKER_QUEUE,
            "--concurrency",
            str(self.concurrency),
            "--pool",
            "prefork",
            "--hostname",
            self.node,
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def is_ready(self) -> bool:
        return " ready." in self.log()


class CeleryBeat(Service):
    """``celery -A config beat``: the schedule of config/settings.py, which sends
    ``webhooks.tasks.sweep`` every WEBHOOK_SWEEP_INTERVAL_SECONDS."""

    name = "beat"

    def command(self) -> list[str]:
        return [
            str(BIN / "celery"),
            "-A",
            "config",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(self.workdir / "beat-schedule"),
            "--max-interval",
            "1",
        ]

    def is_ready(self) -> bool:
        return "beat: Starting" in self.log()


class Gunicorn(Service):
    """gunicorn serving ``config.wsgi`` on 127.0.0.1 (``bench.settings``: the site plus
    ``bench/trivial/``). Ready once ``/healthz`` answers 200."""

    name = "gunicorn"

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        *,
        workers: int = 2,
        threads: int = 4,
        worker_class: str = "gthread",
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, env)
        self.workers = workers
        self.threads = threads
        self.worker_class = worker_class
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(BIN / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--worker-class",
            self.worker_class,
            "--chdir",
            str(REPO),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--keep-alive",
            "30",
            # The default control socket is one fixed path per user: two servers
            # would fight over it.
            "--no-control-socket",
            "--worker-tmp-dir",
            str(self.workdir),
        ]

    def is_ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    """Start every service at once (they boot in parallel), wait until each is ready,
    and stop them all in reverse order on exit, whatever happens in between."""
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_ready()
        yield services
    finally:
        for service in reversed(services):
            with contextlib.suppress(Exception):
                service.stop()


# --- Databases ----------------------------------------------------------------------


def _maintenance_connection(url: str) -> Any:
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
        autocommit=True,
    )


def _database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing database name {name!r}: letters, digits and _ only")
    return name


def recreate_database(url: str) -> None:
    """Drop (if present) and create the database named in ``url``."""
    from psycopg import sql

    drop_database(url)
    with _maintenance_connection(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_database_name(url))))


def drop_database(url: str) -> None:
    from psycopg import sql

    name = _database_name(url)
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with _maintenance_connection(url) as conn:
        conn.execute(drop)


def migrate(env: Mapping[str, str]) -> None:
    """``manage.py migrate`` with the services' environment (their database)."""
    result = subprocess.run(  # noqa: S603 (our own fixed command)
        [sys.executable, str(REPO / "manage.py"), "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise ServiceError(f"migrate failed:\n{result.stdout}\n{result.stderr}")
