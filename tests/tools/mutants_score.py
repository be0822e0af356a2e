"""The summary `make mutants` ends with: the mutation score of each examined module and in
all, every surviving mutant by name, and a failure when the score is under the bar.

A mutant is viable when it builds; it is caught when a test fails (or hangs past the
timeout) with it. The score is caught / viable.
"""

import argparse
import collections
import json
import pathlib
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("outcomes", type=pathlib.Path, help="cargo-mutants' mutants.out/outcomes.json")
    parser.add_argument("--at-least", type=float, default=90.0, help="the lowest acceptable score, in percent")
    args = parser.parse_args()
    if not args.outcomes.is_file():
        print(f"no {args.outcomes}: cargo-mutants did not run to the end (see its output above)", file=sys.stderr)
        return 1
    data = json.loads(args.outcomes.read_text())
    per_file = collections.defaultdict(collections.Counter)
    missed = []
    for outcome in data["outcomes"]:
        scenario = outcome["scenario"]
        if not isinstance(scenario, dict) or "Mutant" not in scenario:
            if outcome["summary"] != "Success":
                print(f"the unmutated baseline did not pass: {outcome['summary']}", file=sys.stderr)
                return 1
            continue
        mutant = scenario["Mutant"]
        path = mutant["file"] if isinstance(mutant.get("file"), str) else mutant["name"].split(":")[0]
        summary = outcome["summary"]
        per_file[path][summary] += 1
        if summary == "MissedMutant":
            missed.append(mutant["name"])

    def score(counts: collections.Counter) -> tuple[int, int]:
        caught = counts["CaughtMutant"] + counts["Timeout"]
        return caught, caught + counts["MissedMutant"]

    print(f"{'module':<52} {'caught':>7} {'viable':>7} {'score':>7}")
    total = collections.Counter()
    for path in sorted(per_file):
        caught, viable = score(per_file[path])
        total.update(per_file[path])
        print(f"{path:<52} {caught:>7} {viable:>7} {100 * caught / max(viable, 1):>6.1f}%")
    caught, viable = score(total)
    overall = 100 * caught / max(viable, 1)
    print(f"{'all':<52} {caught:>7} {viable:>7} {overall:>6.1f}%")
    print(f"({total['Unviable']} unviable, {total['Timeout']} timed out and counted as caught)")
    if missed:
        print("\nsurvivors:")
        for name in sorted(missed):
            print(f"  {name}")
    if overall < args.at_least:
        print(f"\nthe score {overall:.1f}% is under {args.at_least:.0f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
