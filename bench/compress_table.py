#!/usr/bin/python3
"""compress_table.py — turns the reports of bench/compress.sh into one results file, the table
in docs/compression.md (between its bench markers) and an SVG chart of test top-1 against FLOPs.
usage: compress_table.py WORK OUT.json DOC.md CHART.svg TARGET TARGET_PARAMS MODE METHOD..."""
import json
import math
import os
import platform
import random
import statistics
import sys
import time

BEGIN, END = "<!-- bench/compress.sh: begin -->", "<!-- bench/compress.sh: end -->"
LABELS = {"nb-ga": "nb + ga (the method)", "l1-vbmf": "l1 + vbmf", "bn-uniform": "bn + uniform",
          "nb-none": "nb only", "none-ga": "ga only"}
COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def load(work, methods):
    runs = {}
    for m in methods:
        name = m.replace(" ", "-")
        runs[name] = json.load(open(os.path.join(work, name + ".json")))
    return runs


def load_stamps(work, runs):
    """Each run's stamp (bench/compress.sh: the actiond version first, then the input model's
    and data lists' hashes and the flags); {} for runs made before stamps were written."""
    out = {}
    for name in runs:
        path = os.path.join(work, name + ".stamp")
        if os.path.exists(path):
            out[name] = {"lines": open(path).read().splitlines(), **finished(path)}
    return out


def finished(stamp):
    """When and on what CPU a run finished: its .finished file (bench/compress.sh writes it, and
    it travels with a kept run, which may come from another machine), else the stamp's time and
    this machine (a run made before .finished was written)."""
    path = stamp[:-len(".stamp")] + ".finished"
    if os.path.exists(path):
        lines = open(path).read().splitlines()
        return {"date": lines[0], "cpu": lines[1] if len(lines) > 1 else cpu_name()}
    return {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(stamp))),
            "cpu": cpu_name()}


def cpus(stamps):
    """The CPU(s) the runs were made on (each method's input and output are timed in its own
    run, so its latency ratio is of one machine)."""
    return " and ".join(sorted({s["cpu"] for s in stamps.values()})) or cpu_name()


def made_by(stamps):
    """Which build made the runs and when, for the table's first line."""
    if not stamps:
        return ""
    builds = sorted({s["lines"][0] for s in stamps.values()})
    dates = sorted(s["date"][:10] for s in stamps.values())
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return f" with {', '.join(builds)}, its runs finished {when}"


def load_unseen(work, runs):
    """`actiond eval --json` of the input and of each output on the unseen-seed clips
    (bench/compress.sh); {} when the run has none (written before they were measured)."""
    out = {}
    for name in ["input", *runs]:
        path = os.path.join(work, name + ".unseen.json")
        if os.path.exists(path):
            out[name] = json.load(open(path))
    return out if "input" in out else {}


def row(name, rep):
    a, b = rep["points"][0], rep["points"][-1]
    # Latency from the side-by-side timing of input and output at the end of the run.
    return {"method": name, "params": b["params"], "flops": b["flops"], "ms": rep["ms_output"],
            "ms_input": rep["ms_input"],
            "params_x": a["params"] / b["params"], "flops_x": a["flops"] / b["flops"],
            "latency_x": rep["ms_input"] / rep["ms_output"], "test_top1": b["test_top1"],
            "delta": b["test_top1"] - a["test_top1"], "val_top1": b["val_top1"],
            "input": a, "minutes": rep["seconds"] / 60, "points": rep["points"],
            "vs_input": paired(a.get("test_right"), b.get("test_right")), "report": rep,
            "target_latency": rep.get("target_latency"),
            "latency_predicted": rep.get("latency_predicted"), "unseen": None}


def add_unseen(r, unseen):
    """The unseen-seed figures of a row: top-1, Δ against the input with its paired interval,
    and the same over the test clips and the unseen clips together."""
    u, a = unseen.get(r["method"]), unseen.get("input")
    if not u or not a or "right" not in u or "right" not in a:
        return
    test_a, test_b = r["input"].get("test_right"), r["points"][-1].get("test_right")
    both = (test_a + a["right"], test_b + u["right"]) if test_a and test_b else None
    r["unseen_right"] = u["right"]
    r["unseen"] = {"top1": u["top1"], "input_top1": a["top1"], "clips": u["clips"],
                   "vs_input": paired(a["right"], u["right"]),
                   "pooled": paired(*both) if both else None,
                   "pooled_top1": (both[1].count("1") / len(both[1].replace("-", "")))
                   if both else None,
                   "pooled_input": (both[0].count("1") / len(both[0].replace("-", "")))
                   if both else None}


def paired(a, b, resamples=10000, seed=1):
    """b's top-1 minus a's on the same test clips, with a 95 % paired-bootstrap interval
    (clips drawn with replacement, both models' outcomes on a clip kept together); None
    when a report has no per-clip outcomes (written before they were recorded)."""
    if not a or not b or len(a) != len(b):
        return None
    d = [int(y) - int(x) for x, y in zip(a, b) if x != "-" and y != "-"]
    if not d:
        return None
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(d, k=len(d))) / len(d) for _ in range(resamples))
    return sum(d) / len(d), means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def down(x):
    """x to two decimals rounded down: a cut just under a goal (3.9995x) never reads as it."""
    return f"{math.floor(100 * x) / 100:.2f}"


def interval(p):
    return f"{100 * p[1]:+.1f} … {100 * p[2]:+.1f}" if p else "—"


def predicted(r):
    """The table's prediction of the kept choice, and whether the stage's check in measured
    time chose again (the first choice's measured latency)."""
    p = r["latency_predicted"]
    if not p:
        return ""
    c = r["report"].get("latency_check") or {}
    again = (f"; a first choice measured {1 / c['measured']:.2f}× was chosen again"
             if c.get("retarget") else "")
    return f"; table {1 / p:.1f}×{again}"


def table(rows, target, target_params, mode, stamps):
    a = rows[0]["input"]
    lat = next((r["target_latency"] for r in rows if r["target_latency"]), None)
    free = [LABELS.get(r["method"], r["method"]) for r in rows if not r["target_latency"]]
    lat_text = (f"; one-thread latency ≤ {lat} of the input's ({1 / lat:.1f}× lower), predicted "
                "by the decomposition stage's latency table (`--target-latency`), for every "
                "method that decomposes" + (f" ({', '.join(free)}: no decomposition stage, no "
                                            "latency limit)" if free else "")) if lat else ""
    lines = [f"Budget: FLOPs ≤ {target} of the input ({1 / float(target):.0f}× fewer) and "
             f"parameters ≤ {target_params} ({1 / float(target_params):.0f}× fewer){lat_text}, "
             f"{mode} run of `bench/compress.sh`{made_by(stamps)}, "
             f"{'the table made ' if stamps else ''}{time.strftime('%Y-%m-%d', time.gmtime())}, "
             f"{cpus(stamps)}, {os.cpu_count()} cores. Latency: one clip (3 segments), one "
             "thread, median of the runs; each method's input and output timed interleaved in the same "
             "process, the ratio taken pair by pair (the uncompressed row gives the median of "
             "those input timings; \"table\": the latency table's prediction; a choice the "
             "decomposition stage measured over the limit was chosen again, once, to a lower "
             "table limit). Time per FLOP: latency per counted FLOP against the input's "
             "(the FLOPs cut over the latency cut; above 1 the kept FLOPs run slower than the "
             "input's did). Δ top-1 is against the uncompressed model on the same "
             "test clips; its 95 % interval comes from a paired bootstrap over those clips "
             "(the test list's sampling noise, not the run-to-run spread of fine-tuning). "
             "Unseen: the same on 200 clips of a synth seed (1001) that neither the model nor "
             "any fine-tuning saw (models/RECIPE.md's test set), a second opinion from other "
             "clips.", "",
             "| method | params | MFLOPs | latency | time per FLOP | test top-1 | Δ top-1 | 95 % interval | unseen top-1 (Δ; 95 % interval) | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| uncompressed | {a['params']:,} | {a['flops'] / 1e6:.1f} | "
             f"{statistics.median(r['ms_input'] for r in rows):.2f} ms | "
             f"1 | {a['test_top1']:.3f} | | | {unseen_input(rows)} | |"]
    for r in rows:
        lines.append(f"| {LABELS.get(r['method'], r['method'])} | {r['params']:,} "
                     f"({r['params_x']:.1f}× fewer) | {r['flops'] / 1e6:.1f} ({r['flops_x']:.1f}×) "
                     f"| {r['ms']:.2f} ms ({down(r['latency_x'])}× lower{predicted(r)}) | "
                     f"{r['flops_x'] / r['latency_x']:.2f} | {r['test_top1']:.3f} | "
                     f"{100 * r['delta']:+.1f} pt | {interval(r['vs_input'])} | "
                     f"{unseen_cell(r)} | {r['minutes']:.1f} |")
    return lines


def unseen_input(rows):
    u = next((r["unseen"] for r in rows if r["unseen"]), None)
    return f"{u['input_top1']:.3f}" if u else "—"


def unseen_cell(r):
    u = r["unseen"]
    if not u:
        return "—"
    return (f"{u['top1']:.3f} ({100 * u['vs_input'][0]:+.1f} pt; {interval(u['vs_input'])})"
            if u["vs_input"] else f"{u['top1']:.3f}")


def verdict(rows):
    m = next(r for r in rows if r["method"] == "nb-ga")
    goals = [("≥ 10× fewer params", m["params_x"] >= 10),
             ("≥ 5× fewer FLOPs", m["flops_x"] >= 5 - 1e-9),
             ("≥ 4× lower 1-thread latency", m["latency_x"] >= 4),
             ("top-1 within 1.0 point of the uncompressed model", m["delta"] >= -0.01 - 1e-9)]
    lines = ["", "Goals for nb + ga: " + "; ".join(
        f"{g} — {'met' if ok else 'NOT met'}" for g, ok in goals) + "."]
    u = m["unseen"]
    if u and u["vs_input"] and u["pooled"]:
        n = u["clips"] + len(m["points"][-1]["test_right"])
        lines.append(f"On other clips (the goal is judged on the test list): nb + ga's top-1 on "
                     f"the unseen-seed clips is {100 * u['vs_input'][0]:+.1f} pt "
                     f"({interval(u['vs_input'])}) from the uncompressed model's, on the test and "
                     f"unseen clips together ({n}) {u['pooled_top1']:.3f} against "
                     f"{u['pooled_input']:.3f}, {100 * u['pooled'][0]:+.1f} pt "
                     f"({interval(u['pooled'])}).")
    pairs = []
    for r in rows:
        if r["method"] == "nb-ga":
            continue
        p = paired(r["points"][-1].get("test_right"), m["points"][-1].get("test_right"))
        if p:
            pairs.append(f"{LABELS[r['method']]} {100 * p[0]:+.1f} pt ({interval(p)}"
                         f"{both_lists(r, m)})")
    if pairs:
        lines.append("nb + ga minus each baseline on the same test clips, with the 95 % "
                     "paired-bootstrap interval: " + "; ".join(pairs) + ". An interval that "
                     "spans 0 means this test list cannot tell the two apart.")
    worse = [LABELS[r["method"]] for r in rows
             if r["method"] != "nb-ga" and r["test_top1"] >= m["test_top1"]]
    if worse:
        lines.append(f"nb + ga does **not** beat every baseline: {', '.join(worse)} "
                     f"{'is' if len(worse) == 1 else 'are'} as accurate or more at this budget.")
    else:
        lines.append("nb + ga is more accurate than every baseline at this budget.")
    return lines


def both_lists(r, m):
    """nb + ga minus r over the test and unseen clips together, as text ('' without them)."""
    ur, um = r["unseen"], m["unseen"]
    tr, tm = r["points"][-1].get("test_right"), m["points"][-1].get("test_right")
    if not ur or not um or not tr or not tm:
        return ""
    both = paired(tr + r["unseen_right"], tm + m["unseen_right"])
    return f"; both lists {100 * both[0]:+.1f} pt, {interval(both)}" if both else ""


def layers(rows):
    """Where nb + ga's time goes, layer by layer: counted FLOPs and measured time before and
    after, and the time per FLOP of each against the whole input model's."""
    m = next(r for r in rows if r["method"] == "nb-ga")
    rep, a = m["report"], m["input"]
    unit = rep["ms_input"] / a["flops"]
    lines = ["", "Where nb + ga's latency goes (per layer, one clip, one thread; time per FLOP "
             "against the whole input model's):", "",
             "| layer | MFLOPs | ms | time per FLOP | after: op, ranks | MFLOPs | ms | time per FLOP |",
             "|---|---|---|---|---|---|---|---|"]
    # below 0.1 MFLOPs (the classifiers) a layer's time is call overhead, not arithmetic
    rel = lambda ms, f: f"{ms / f / unit:.2f}" if f >= 1e5 else "—"
    for l in rep["layers"]:
        if l["op_after"] == "TuckerConv":
            ranks = f"{l['rin']}/{l['rout']}"
        elif l["op"] == "Conv" and l["rin"]:  # a square factor folded into the core
            ranks = f"{l['rin']}/{l['rout']}, folded"
        else:
            ranks = f"{l['rin']}" if l["rin"] else "—"
        lines.append(f"| {l['name']} | {l['flops'] / 1e6:.1f} | {l['ms']:.2f} | "
                     f"{rel(l['ms'], l['flops'])} | {l['op_after']} {ranks} "
                     f"({l['cin_after']}→{l['cout_after']}) | {l['flops_after'] / 1e6:.1f} | "
                     f"{l['ms_after']:.2f} | {rel(l['ms_after'], l['flops_after'])} |")
    conv_ms = sum(l["ms_after"] for l in rep["layers"])
    lines.append(f"| the rest (the whole model's time minus its layers') | | {rep['ms_input'] - sum(l['ms'] for l in rep['layers']):.2f} "
                 f"| | | | {rep['ms_output'] - conv_ms:.2f} | |")
    return lines


def svg(rows, path):
    w, h, l, r, t, b = 640, 400, 60, 180, 20, 50
    pts = [p for row_ in rows for p in row_["points"]]
    xs = [p["flops"] / 1e6 for p in pts]
    ys = [p["test_top1"] for p in pts]
    x0, x1 = 0, max(xs) * 1.05
    y0, y1 = max(0.0, min(ys) - 0.05), min(1.0, max(ys) + 0.05)
    X = lambda v: l + (v - x0) / (x1 - x0) * (w - l - r)
    Y = lambda v: h - b - (v - y0) / (y1 - y0) * (h - t - b)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="black"/>',
           f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="black"/>',
           f'<text x="{(l + w - r) / 2}" y="{h - 10}" text-anchor="middle">MFLOPs per clip</text>',
           f'<text x="15" y="{(t + h - b) / 2}" transform="rotate(-90 15 {(t + h - b) / 2})" '
           'text-anchor="middle">test top-1</text>']
    for i in range(6):
        xv, yv = x0 + (x1 - x0) * i / 5, y0 + (y1 - y0) * i / 5
        out.append(f'<text x="{X(xv):.0f}" y="{h - b + 16}" text-anchor="middle">{xv:.0f}</text>')
        out.append(f'<text x="{l - 6}" y="{Y(yv) + 4:.0f}" text-anchor="end">{yv:.2f}</text>')
    for k, row_ in enumerate(rows):
        c = COLOURS[k % len(COLOURS)]
        path_ = " ".join(f"{X(p['flops'] / 1e6):.1f},{Y(p['test_top1']):.1f}" for p in row_["points"])
        out.append(f'<polyline points="{path_}" fill="none" stroke="{c}" stroke-opacity="0.5"/>')
        last = row_["points"][-1]
        out.append(f'<circle cx="{X(last["flops"] / 1e6):.1f}" cy="{Y(last["test_top1"]):.1f}" '
                   f'r="5" fill="{c}"/>')
        out.append(f'<rect x="{w - r + 15}" y="{t + 18 * k}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{w - r + 30}" y="{t + 18 * k + 10}">'
                   f'{LABELS.get(row_["method"], row_["method"])}</text>')
    a = rows[0]["input"]
    out.append(f'<circle cx="{X(a["flops"] / 1e6):.1f}" cy="{Y(a["test_top1"]):.1f}" r="5" '
               'fill="black"/>')
    out.append(f'<text x="{X(a["flops"] / 1e6) - 8:.1f}" y="{Y(a["test_top1"]) - 8:.1f}" '
               'text-anchor="end">uncompressed</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    work, out, doc, chart, target, target_params, mode = sys.argv[1:8]
    methods = sys.argv[8:]
    runs = load(work, methods)
    rows = [row(n, rep) for n, rep in runs.items()]
    unseen = load_unseen(work, runs)
    for r in rows:
        add_unseen(r, unseen)
    stamps = load_stamps(work, runs)
    lines = table(rows, target, target_params, mode, stamps) + verdict(rows) + layers(rows)
    json.dump({"target_flops": float(target), "target_params": float(target_params),
               "mode": mode, "cpu": cpu_name(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "loadavg_after": open("/proc/loadavg").read().split()[:3],
               "runs": runs, "unseen": unseen, "stamps": stamps}, open(out, "w"), indent=1)
    svg(rows, chart)
    text = open(doc).read()
    block = "\n".join([BEGIN, *lines, "", f"Results: `{os.path.relpath(out, os.path.dirname(doc) + '/..')}`; "
                       "chart: [compression-chart.svg](compression-chart.svg).", END])
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text += "\n## Results\n\n" + block + "\n"
    open(doc, "w").write(text)
    print("\n".join(lines))
    print(f"\nresults: {out}; table in {doc}; chart {chart}")


if __name__ == "__main__":
    main()
