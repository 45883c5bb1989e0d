"""`python -m bench report ...`: see bench/report.py (`python -m bench report --help`)."""
from __future__ import annotations

import sys

USAGE = """usage: python -m bench report [JSON ...] [--out docs/benchmarks.md] [--compare OLD.json] [--threshold 0.1]

Benchmarks themselves run under pytest:
  pytest --benchmark-only --benchmark-json=.benchmarks/cpu.json      # default subset (< 15 min on 2 cores)
  pytest --benchmark-only --bench-full                               # full matrix (or GANRT_BENCH_FULL=1)
  pytest                                                              # tests + each benchmark once (check)
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch `report`; anything else is a usage error (exit code 2)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv or argv[0] != "report":
        print(USAGE, file=sys.stderr)
        print(f"python -m bench: error: {'unknown command ' + repr(argv[0]) if argv else 'missing command'} "
              f"(the only command is: report)", file=sys.stderr)
        return 2
    from bench.report import report

    return report(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
