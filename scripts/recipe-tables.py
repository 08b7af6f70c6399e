#!/usr/bin/python3
"""recipe-tables — rewrites the generated parts of models/RECIPE.md from the files make-model
commits beside the models (default.eval.json, default.train.jsonl, default.build.json,
default-small.eval.json, default-small.report.json), so that no figure there is copied by hand.
usage: scripts/recipe-tables.py [MODELS_DIR]"""
import json
import os
import re
import sys


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def per_class_table(ev):
    """Top-1 per class, fused and each stream alone (an eval JSON without the streams' per-class
    figures, from before actiond eval reported them, gives the fused column only)."""
    s = ev["streams"]
    both = all("per_class" in s.get(k, {}) for k in ("rgb", "motion"))
    rows = ["| class | fused | motion alone | RGB alone |" if both else "| class | fused |",
            "|---|---|---|---|" if both else "|---|---|"]
    for c, v in ev["per_class"].items():
        extra = f" {s['motion']['per_class'][c]:.2f} | {s['rgb']['per_class'][c]:.2f} |" if both else ""
        rows.append(f"| {c} | {v:.2f} |" + extra)
    return "\n".join(rows)


def dense_table(ev, build, log):
    s = ev["streams"]
    last = log[-1]
    fusion = build["fusion"]
    rows = [
        "| | top-1 on the seed-1001 test set |",
        "|---|---|",
        f"| fused (fusion weights {fusion[0]:.2f} RGB, {fusion[1]:.2f} motion, chosen on the validation clips) "
        f"| {ev['top1']:.3f} |",
        f"| motion stream alone | {s['motion']['top1']:.3f} |",
        f"| RGB stream alone | {s['rgb']['top1']:.3f} |",
        "",
        per_class_table(ev),
        "",
        f"{ev['clips']} test clips. Training took "
        f"{build['seconds'] / 60:.1f} min ({last['epoch']} epochs of {last['steps'] // last['epoch']} "
        f"steps, {build['peak_rss_mb']:.0f} MB peak RSS) on {build['cpu']} with "
        f"{build['threads']} threads, {build['date']}; the model is "
        f"{build['model_bytes'] / 1e6:.1f} MB. At the last epoch the training clips scored "
        f"{last['train_top1'][0]:.2f} (RGB) and {last['train_top1'][-1]:.2f} (motion).",
    ]
    return "\n".join(rows)


def small_table(ev_d, ev_s, rep, segments):
    pts = {p["stage"]: p for p in rep["points"]}
    a, b = pts["input"], pts[rep["points"][-1]["stage"]]
    rows = [
        "| | default.adm | default-small.adm |",
        "|---|---|---|",
        f"| parameters | {a['params']:,} | {b['params']:,} ({a['params'] / b['params']:.1f}× fewer) |",
        f"| MFLOPs per clip ({segments} segments) | {a['flops'] / 1e6:.1f} | "
        f"{b['flops'] / 1e6:.1f} ({a['flops'] / b['flops']:.1f}× fewer) |",
        f"| one-thread latency, timed side by side | {rep['ms_input']:.2f} ms | "
        f"{rep['ms_output']:.2f} ms ({rep['ms_input'] / rep['ms_output']:.1f}× lower) |",
        f"| fused top-1 on the seed-1001 test set (`*.eval.json`) | {ev_d['top1']:.3f} | "
        f"{ev_s['top1']:.3f} |",
        "",
        "Per class (fused, compressed): "
        + ", ".join(f"{c} {v:.2f}" for c, v in ev_s["per_class"].items()) + ".",
    ]
    return "\n".join(rows)


def replace(text, name, body):
    pat = re.compile(rf"(<!-- recipe-tables {name}: begin -->\n).*?(<!-- recipe-tables {name}: end -->)",
                     re.S)
    if not pat.search(text):
        sys.exit(f"recipe-tables: no '{name}' markers in RECIPE.md")
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models")
    ev = load(d, "default.eval.json")
    build = load(d, "default.build.json")
    with open(os.path.join(d, "default.train.jsonl")) as f:
        log = [json.loads(line) for line in f if line.strip()]
    path = os.path.join(d, "RECIPE.md")
    with open(path) as f:
        text = f.read()
    text = replace(text, "dense", dense_table(ev, build, log))
    text = replace(text, "small", small_table(ev, load(d, "default-small.eval.json"),
                                              load(d, "default-small.report.json"),
                                              build["segments"]))
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
