"""compress_seeds.py — sums up `bench/compress.sh --seeds`: nb + ga run once per seed.
Per run the reductions and the accuracy against the input's, on the test list (240 clips of the
training set's seed) and the unseen list (200 clips of seed 1001); then what the runs share:
the mean, the range, and how many land within 1 point of the input. Prints a Markdown table
and writes everything to OUT (JSON).
usage: compress_seeds.py DIR OUT RECIPE SEED...   (DIR: bench/work/compress/seeds[-RECIPE];
RECIPE: the flags the runs had beyond the table's, "" for none; each run's whole command, as
its stamp recorded it, goes to OUT too, since the table's own flags change over time)"""
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def point(report, stage):
    return next(p for p in report["points"] if p["stage"] == stage)


def stamp(path):
    """bench/compress.sh's stamp of a run: the build, then the model and data hashes, then every
    flag; None for runs made before stamps were written."""
    if not os.path.exists(path):
        return None
    lines = open(path).read().splitlines()
    return {"build": lines[0], "flags": lines[3:]}


def run_row(report, unseen, input_unseen):
    first, last = point(report, "input"), point(report, "decomposed+ft")
    n_test, n_unseen = len(first["test_right"]), unseen["clips"]
    test, unseen_top1 = last["test_top1"], unseen["top1"]
    both = (test * n_test + unseen_top1 * n_unseen) / (n_test + n_unseen)
    input_both = (first["test_top1"] * n_test + input_unseen["top1"] * n_unseen) / (n_test + n_unseen)
    return {
        "params_x": first["params"] / last["params"],
        "flops_x": first["flops"] / last["flops"],
        "latency_x": report["ms_input"] / report["ms_output"],
        "test_top1": test,
        "test_delta": test - first["test_top1"],
        "unseen_top1": unseen_top1,
        "unseen_delta": unseen_top1 - input_unseen["top1"],
        "both_delta": both - input_both,
        "input_test_top1": first["test_top1"],
        "input_unseen_top1": input_unseen["top1"],
    }


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    d, out, recipe, seeds = sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]]
    input_unseen = load(os.path.join(d, "input.unseen.json"))
    runs = {}
    for s in seeds:
        name = os.path.join(d, "nb-ga-s%d" % s)
        runs[s] = run_row(load(name + ".json"), load(name + ".unseen.json"), input_unseen)
        runs[s]["stamp"] = stamp(name + ".stamp")
    print("| seed | params | FLOPs | latency | test | Δ | unseen | Δ | both lists Δ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s, r in runs.items():
        print("| %d | %.1f× | %.1f× | %.2f× | %.3f | %+.1f | %.3f | %+.1f | %+.1f |" % (
            s, r["params_x"], r["flops_x"], int(r["latency_x"] * 100) / 100, r["test_top1"],
            100 * r["test_delta"], r["unseen_top1"], 100 * r["unseen_delta"],
            100 * r["both_delta"]))
    summary = {}
    for key in ("test_delta", "unseen_delta", "both_delta", "latency_x"):
        v = [r[key] for r in runs.values()]
        summary[key] = {"mean": statistics.mean(v), "min": min(v), "max": max(v)}
    within = sum(r["test_delta"] >= -0.01 for r in runs.values())
    summary["test_within_1pt"] = within
    t, b = summary["test_delta"], summary["both_delta"]
    print("\nover %d runs: test Δ mean %+.1f (%+.1f … %+.1f), both lists Δ mean %+.1f "
          "(%+.1f … %+.1f); within 1 point on the test list: %d of %d" % (
              len(runs), 100 * t["mean"], 100 * t["min"], 100 * t["max"], 100 * b["mean"],
              100 * b["min"], 100 * b["max"], within, len(runs)))
    with open(out, "w") as f:
        json.dump({"recipe": recipe, "seeds": seeds, "runs": {str(s): r for s, r in runs.items()},
                   "summary": summary}, f, indent=1)
    print("wrote %s" % out)


if __name__ == "__main__":
    main()
