"""Run every measure, or the named ones: `python -m bench [NAME ...] [--json PATH]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import MEASURES, BenchError, Result, run


def main(argv: list[str] | None = None) -> int:
    """Run the measures, print one line each, optionally write them as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="measures to run (default: all)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)

    names: list[str] = list(dict.fromkeys(args.names)) or list(MEASURES)
    unknown = [name for name in names if name not in MEASURES]
    if unknown:
        parser.error(  # exits with status 2
            f"unknown measure(s): {', '.join(unknown)}; known: {', '.join(sorted(MEASURES))}"
        )

    results: list[Result] = []
    failed = False
    for name in names:
        try:
            result = run(name)
        except BenchError as exc:
            print(f"{name} FAILED: {exc}", file=sys.stderr)
            failed = True
            continue
        print(result.line(), flush=True)
        results.append(result)

    if args.json is not None:
        args.json.write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
