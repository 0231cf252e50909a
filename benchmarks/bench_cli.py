"""Benchmark the start-up of ``bubblegym`` commands: CPU and wall seconds per command, and the
heavy libraries each imports.

Run ``python benchmarks/bench_cli.py`` (``--repeat N`` runs per command, default 3). Each
command runs in a fresh interpreter (``python -m experiments.cli ...``), as a user types it;
the figures are the best of N runs. CPU seconds (user + system of the child) are the steadier
figure on a machine shared with other jobs; wall seconds include waiting for a core. Figures
are printed, never asserted (``tests/test_cli.py`` asserts what ``list`` must not import).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "list": ["list"],
    "list agents vw": ["list", "agents", "vw"],
    "list scenarios": ["list", "scenarios"],
}
"""Label -> the command's arguments."""

HEAVY = ("pandas", "pyarrow", "jsonschema", "torch", "stable_baselines3", "matplotlib", "seaborn", "numba", "scipy")
"""Libraries whose import costs a noticeable share of a second or more."""

_PROBE = """
import contextlib, io, json, sys
from experiments.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def run_once(argv: Sequence[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``python -m experiments.cli ARGV`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "experiments.cli", *argv], cwd=ROOT, env=env, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def heavy_imports(argv: Sequence[str]) -> list[str]:
    """The :data:`HEAVY` libraries imported by the command ``argv``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else ["(probe failed)"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (the best is printed)")
    args = parser.parse_args(argv)
    print(f"{'command':<18} {'CPU s':>6} {'wall s':>7}  heavy imports (best of {args.repeat})")
    for label, command in COMMANDS.items():
        runs = [run_once(command) for _ in range(args.repeat)]
        cpu, wall = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"{label:<18} {cpu:6.2f} {wall:7.2f}  {', '.join(heavy_imports(command)) or '-'}")
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
