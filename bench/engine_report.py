#!/usr/bin/python3
"""engine_report.py — turns the rounds of bench/engine.sh into its results file and Markdown
table: per model, thread count and engine the median over rounds of each round's median
latency (min–max over rounds), the ratio to actiond taken round by round, and the fraction of
the compute floor (model FLOPs over the same run's SGEMM rate at that thread count).
usage: engine_report.py WORK OUT.json LOAD_BEFORE LOAD_AFTER"""
import json
import os
import platform
import statistics as st
import sys
import time

NAMES = {"actiond": "actiond", "ort": "ONNX Runtime", "torch": "PyTorch", "opencv": "OpenCV DNN"}
MODELS = {"resnet18-224": "ResNet-18 3×224×224", "resnet18-112": "ResNet-18 3×112×112",
          "default": "default two-stream (vgg-small ×0.5, 1 clip = 3 segments, 112×112)"}


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def lines(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def rel_l2(a, b):
    num = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5
    den = sum(y * y for y in b) ** 0.5
    return num / den if den else None


def summarise(rows, sgemm):
    # The floor is the best the kernel can do: the fastest SGEMM of the run (other work on the
    # machine only ever slows a round down).
    rate = {t: max(s["sgemm_gflops"] for s in sgemm if s["threads"] == t)
            for t in {s["threads"] for s in sgemm}}
    by = {(r["round"], r["engine"], r["model"], r["threads"]): r for r in rows if "median_ms" in r}
    errors = sorted({(r["engine"], r["model"], r["error"]) for r in rows if "error" in r})
    out = []
    for model in MODELS:
        for t in sorted({r["threads"] for r in rows}):
            base = {k[0]: v for k, v in by.items() if k[1:] == ("actiond", model, t)}
            if not base:
                continue
            flops = next(iter(base.values()))["flops"]
            for e in NAMES:
                mine = {k[0]: v for k, v in by.items() if k[1:] == (e, model, t)}
                if not mine:
                    continue
                med = [v["median_ms"] for v in mine.values()]
                ratio = [mine[k]["median_ms"] / base[k]["median_ms"] for k in mine if k in base]
                m = st.median(med)
                floor_ms = flops / (rate[t] * 1e9) * 1e3 if t in rate else None
                out.append({
                    "model": model, "threads": t, "engine": e,
                    "version": next(iter(mine.values())).get("version", ""),
                    "median_ms": m, "min_ms": min(med), "max_ms": max(med),
                    "best_iteration_ms": min(v["min_ms"] for v in mine.values()),
                    "ratio_to_actiond_median": st.median(ratio), "ratio_min": min(ratio),
                    "ratio_max": max(ratio), "rounds": len(med), "flops": flops,
                    "compute_floor_ms": floor_ms,
                    "fraction_of_floor": floor_ms / m if floor_ms else None})
    return out, rate, errors


def parity(rows):
    """PyTorch (the ONNX interpreter) against OpenCV DNN: the first outputs, where both ran."""
    res = {}
    for model in MODELS:
        tv = next((r for r in rows if r["engine"] == "torch" and r["model"] == model and "out" in r), None)
        cv = next((r for r in rows if r["engine"] == "opencv" and r["model"] == model and "out" in r), None)
        if tv and cv and tv["shape"] == cv["shape"]:
            res[model] = rel_l2(cv["out"], tv["out"])
        elif tv and cv:  # e.g. a ReduceMean over the batch axis that OpenCV does not apply
            res[model] = f"output shapes differ: OpenCV {cv['shape']}, PyTorch {tv['shape']}"
    return res


def main():
    work, out, load_before, load_after = sys.argv[1:5]
    rows = lines(f"{work}/rounds.jsonl")
    sgemm = lines(f"{work}/sgemm.jsonl")
    table, rate, errors = summarise(rows, sgemm)
    core = next((r["openblas_core"] for r in rows if r.get("openblas_core")), "?")
    summary = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
        "cpu": cpu_name(), "cores": os.cpu_count(), "openblas_core": core, "batch": 1,
        "loadavg": {"before": load_before, "after": load_after},
        "sgemm_gflops": {str(t): v for t, v in sorted(rate.items())},
        "parity": {"actiond_vs_pytorch_logits": lines(f"{work}/parity.jsonl"),
                   "opencv_vs_pytorch_first_outputs": parity(rows)},
        "errors": [{"engine": e, "model": m, "error": x} for e, m, x in errors],
        "table": table,
    }
    json.dump({"summary": summary, "rounds": rows, "sgemm": sgemm}, open(out, "w"), indent=1)
    n = max((r["rounds"] for r in table), default=0)
    print(f"| model | threads | engine | median ms (min–max over {n} rounds) "
          "| ratio to actiond, per round | % of compute floor |")
    print("|---|---|---|---|---|---|")
    for r in table:
        floor = f"{100 * r['fraction_of_floor']:.0f} %" if r["fraction_of_floor"] else "—"
        ratio = ("1" if r["engine"] == "actiond" else
                 f"{r['ratio_to_actiond_median']:.2f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})")
        print(f"| {MODELS[r['model']]} | {r['threads']} | {NAMES[r['engine']]} {r['version']} "
              f"| {r['median_ms']:.1f} ({r['min_ms']:.1f}–{r['max_ms']:.1f}) | {ratio} | {floor} |")
    rates = ", ".join(f"{t} thread(s) {v:.1f}" for t, v in sorted(rate.items()))
    print(f"\nSGEMM GFLOP/s (OpenBLAS {core}, 1024³, the best of the rounds): {rates}. "
          "Compute floor = model FLOPs (2 × multiply-adds) / SGEMM rate at the same thread count; "
          "above 100 % means fewer multiplications than the direct convolution (Winograd).")
    for p in summary["parity"]["actiond_vs_pytorch_logits"]:
        print(f"{p['model']}: actiond logits vs PyTorch, relative L2 {p['actiond_vs_pytorch_rel_l2']:.2g}")
    for m, v in summary["parity"]["opencv_vs_pytorch_first_outputs"].items():
        if isinstance(v, float):
            v = f"relative L2 {v:.2g}" + (" — they disagree" if v > 1e-3 else "")
        print(f"{m}: OpenCV DNN vs PyTorch (ONNX interpreter), first outputs: {v}")
    for e in summary["errors"]:
        print(f"{NAMES[e['engine']]} could not run {e['model']}: {e['error']}")
    print(f"CPU: {summary['cpu']}, {summary['cores']} cores, load average {load_before} before, "
          f"{load_after} after; results: {out}")


if __name__ == "__main__":
    main()
