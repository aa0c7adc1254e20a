"""The coverage ratchet of ``make test``: fail if the suite's total coverage fell below the floor
in ``tests/coverage-floor.txt``, raise the floor when coverage rose.

    python scripts/coverage_floor.py [--data-file .coverage] [--floor tests/coverage-floor.txt]

The total is read from the combined data file that ``pytest --cov`` leaves (every xdist worker
and every measured subprocess). The floor trails the total by ``SLACK`` points, because a few
lines run or not with timing (retries, races the tests provoke); it only ever goes up. A raised
floor is written back to the file and is meant to be committed with the change that raised it.
"""

from __future__ import annotations

import argparse
import decimal
import io
import pathlib
import sys

import coverage

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Points (of 100) by which the floor trails the measured total.
SLACK = decimal.Decimal("0.5")


def total(data_file: pathlib.Path) -> decimal.Decimal:
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    percent = cov.report(file=io.StringIO())  # the total is all we need here
    return decimal.Decimal(str(percent)).quantize(decimal.Decimal("0.1"), decimal.ROUND_DOWN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-file", type=pathlib.Path, default=ROOT / ".coverage")
    parser.add_argument("--floor", type=pathlib.Path, default=ROOT / "tests" / "coverage-floor.txt")
    args = parser.parse_args(argv)
    if not args.data_file.exists():
        print(f"coverage: no data at {args.data_file} (run the suite with --cov)", file=sys.stderr)
        return 2
    floor = decimal.Decimal(args.floor.read_text().strip()) if args.floor.exists() else None
    now = total(args.data_file)
    if floor is not None and now < floor:
        print(f"coverage: {now}% is below the floor of {floor}% ({args.floor})", file=sys.stderr)
        return 1
    raised = now - SLACK
    if floor is None or raised > floor:
        args.floor.write_text(f"{raised}\n")
        was = "set" if floor is None else f"raised from {floor}%"
        print(f"coverage: {now}%; floor {was} to {raised}% (commit {args.floor})")
    else:
        print(f"coverage: {now}% (floor {floor}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
