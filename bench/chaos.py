"""Run the chaos test (tests/chaos/) at a chosen size, by hand.

    .venv/bin/python bench/chaos.py                 # the CI size: 120 bookings
    .venv/bin/python bench/chaos.py --scale full    # 2,000 bookings (about 10,000 deliveries)
    .venv/bin/python bench/chaos.py --bookings 500 --rate 50

The test itself decides pass or fail (every event processed once, every booking as
its events say, the ledger, the audit chain, no 5xx outside the PostgreSQL restart);
this only sizes it, through the variables the test reads, and shows its summary.
It starts its own PostgreSQL cluster and Redis: nothing shared is touched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCALES = {
    # bookings, deliveries per second, seconds allowed for the inbox to drain
    "ci": (120, 25, 240),
    "full": (2000, 50, 1800),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="ci")
    parser.add_argument("--bookings", type=int, help="instead of the scale's")
    parser.add_argument("--rate", type=float, help="deliveries per second")
    parser.add_argument("--drain-seconds", type=float, help="how long the inbox may take")
    parser.add_argument("--seed", type=int, default=14, help="the shape of the run")
    args = parser.parse_args(argv)
    bookings, rate, drain = SCALES[args.scale]
    env = {
        **os.environ,
        "SLOTPAY_CHAOS_BOOKINGS": str(args.bookings or bookings),
        "SLOTPAY_CHAOS_RATE": str(args.rate or rate),
        "SLOTPAY_CHAOS_DRAIN_SECONDS": str(args.drain_seconds or drain),
        "SLOTPAY_CHAOS_SEED": str(args.seed),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-s",
        "-q",
        str(REPO / "tests" / "chaos"),
    ]
    return subprocess.call(command, cwd=REPO, env=env)  # noqa: S603 (our own fixed command)


if __name__ == "__main__":
    sys.exit(main())
