#!/usr/bin/python3
"""summary.py — gathers one bench/run into bench/results/<date>-<host>.json and .md, and writes
the generated blocks: the headline table in README.md, every benchmark's table in
bench/README.md, the engine table in docs/engine.md (each between its bench/run markers).
usage: summary.py INDEX.jsonl MODE OUT_STEM TOP [--partial]   (partial: write no blocks)
INDEX lines: {"name", "file" (its results JSON or null), "markdown" (its printed tables),
"seconds", "status" ("ok", "failed", "reused")}."""
import json
import math
import os
import platform
import statistics as st
import subprocess
import sys
import time

ORDER = ["limits", "engine", "video", "loader", "train", "pipeline", "reliability", "compress"]
TITLES = {"limits": "Machine limits (`bench/limits.sh`)", "engine": "Engine (`bench/engine.sh`)",
          "video": "Video input (`bench/video.sh`)", "loader": "Training data loader (`bench/loader.sh`)",
          "train": "Training (`bench/train.sh`)", "pipeline": "The daemon end to end (`bench/pipeline.sh`)",
          "reliability": "Reliability: load and soak (`bench/reliability.sh`, docs/reliability.md)",
          "compress": "Compression (`bench/compress.sh`)"}
PEERS = {"ort": "ONNX Runtime", "torch": "PyTorch", "opencv": "OpenCV DNN"}


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def block(path, name, text):
    """Replaces the text between the markers of NAME in PATH (appends them when absent)."""
    begin, end = f"<!-- bench/run {name}: begin -->", f"<!-- bench/run {name}: end -->"
    doc = open(path).read()
    new = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + new + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip() + "\n\n" + new + "\n"
    open(path, "w").write(doc)


def engine_cell(s, model, threads=1):
    rows = [r for r in s["table"] if r["model"] == model and r["threads"] == threads]
    a = next((r for r in rows if r["engine"] == "actiond"), None)
    if not a:
        return None
    peers = ", ".join(f"{PEERS[r['engine']]} {r['ratio_to_actiond_median']:.2f}×"
                      for r in rows if r["engine"] in PEERS)
    floor = f" = {100 * a['fraction_of_floor']:.0f} % of the compute floor" if a["fraction_of_floor"] else ""
    return f"actiond {a['median_ms']:.1f} ms{floor}; others' time over actiond's: {peers}"


def met(ok):
    if ok is None:
        return "not judged"
    return "met" if ok else "**NOT met**"


def headline_rows(res, status):
    rows = []
    p = res.get("pipeline")
    if p:
        r = p["runs"][0]
        g = r["goals"]
        growth = ("no growth" if g["no_growth"] else "growth") if g["no_growth"] is not None else "growth not judged"
        rows.append((f"`actiond serve`, {r['label']}, default model, {r['minutes']:.0f} min",
                     f"{'real time' if g['realtime'] else 'NOT real time'} ({r['fps_total']:.1f} frames/s decoded, "
                     f"{r['dropped']} clips dropped); window latency p50 {r['latency_p50_ms_median']:.0f} ms, "
                     f"p99 {r['latency_p99_ms_worst']:.0f} ms (goal < 1 s: {met(g['p99_under_1s'])}); "
                     f"CPU {r['cpu_cores']:.2f} cores; peak RSS {r['rss_mb_peak']:.0f} MB (goal < 150 MB: "
                     f"{met(g['rss_under_150mb'])}), {r['rss_mb_per_min']:+.2f} MB/min ({growth})"))
    e = res.get("engine")
    if e:
        for model, label in (("resnet18-224", "ResNet-18 224×224, batch 1, 1 thread"),
                             ("default", "default two-stream model, one clip, 1 thread")):
            c = engine_cell(e, model)
            if c:
                rows.append((label, c))
    v = res.get("video")
    if v:
        t = v["tools"]
        rows.append(("video input, 720p H.264 → 112×112 clips, 1 thread",
                     f"mv {t['mv']['fps_median']:.0f} frames/s = {t['mv']['ratio_median']:.2f}× bare FFmpeg "
                     f"decode ({t['ffmpeg']['fps_median']:.0f}); diff {t['diff']['ratio_median']:.2f}×, "
                     f"flow {t['flow']['ratio_median']:.2f}×"))
    c = res.get("compress")
    if c and "nb-ga" in c.get("runs", {}):
        # the latency cut to two decimals rounded down: 3.9995× once read "4.0×", across the goal
        rep = c["runs"]["nb-ga"]
        a, b = rep["points"][0], rep["points"][-1]
        when = (f", reused from {c['date'][:10]}, not rerun by this run" if status.get("compress") == "reused"
                else "")
        rows.append((f"compression nb + ga ({c['mode']} run of bench/compress.sh{when}), default model",
                     f"{a['flops'] / b['flops']:.1f}× fewer FLOPs, {a['params'] / b['params']:.1f}× fewer params, "
                     f"{math.floor(100 * rep['ms_input'] / rep['ms_output']) / 100:.2f}× lower latency; test top-1 "
                     f"{a['test_top1']:.3f} → {b['test_top1']:.3f}"))
    r = res.get("reliability")
    if r:
        rows.append((f"reliability ({r['soak_s']} s soak under faults; HTTP load while 4 streams run)",
                     f"API p99 {r['load_p99_ms']} ms with {r['load_errors']} errors (goal 0 errors, "
                     f"p99 < 50 ms: {met(r['load_goal_met'])}); RSS growth over the soak's second "
                     f"half {r['soak_growth_second_half_pct']} % (goal < 5 %, open files not growing, clean "
                     f"exit and database: {met(r['soak_goal_met'])})"))
    t = res.get("train")
    if t:
        rows.append((f"training, default recipe ({t['classes']} classes), 2 threads",
                     f"{t['warm_clips_per_s']:.1f} clips/s from the cache, {t['cold_clips_per_s']:.1f} "
                     f"decoding; peak RSS {t['peak_rss_mb']:.0f} MB"))
    m = res.get("limits")
    if m:
        n = m["cores"]
        rows.append(("machine: SGEMM (OpenBLAS), bare FFmpeg 720p decode",
                     f"{m['threads_1']['sgemm_gflops']:.0f} GFLOP/s on 1 thread, "
                     f"{m[f'threads_{n}']['sgemm_gflops']:.0f} on {n}; decode "
                     f"{m['threads_1']['decode_fps']:.0f} frames/s on 1 thread, "
                     f"{m[f'threads_{n}']['decode_fps']:.0f} on {n}"))
    return rows


def main():
    index, mode, stem, top = sys.argv[1:5]
    partial = "--partial" in sys.argv[5:]
    items = [json.loads(l) for l in open(index) if l.strip()]
    items.sort(key=lambda x: ORDER.index(x["name"]) if x["name"] in ORDER else 99)
    res, md = {}, {}
    for it in items:
        if it.get("file") and os.path.exists(it["file"]):
            doc = json.load(open(it["file"]))
            res[it["name"]] = doc.get("summary", doc) if it["name"] != "compress" else doc
        text = open(it["markdown"]).read().strip() if it.get("markdown") and os.path.exists(it["markdown"]) else ""
        md[it["name"]] = text.replace(top.rstrip("/") + "/", "")  # paths relative to the repository
    rev = subprocess.run(["git", "-C", top, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    date = time.strftime("%Y-%m-%d", time.gmtime())
    cpu, cores = cpu_name(), os.cpu_count()
    load = open("/proc/loadavg").read().split()[:3]
    gathered = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
                "cpu": cpu, "cores": cores, "mode": mode, "git_rev": rev, "loadavg_at_end": load,
                "benchmarks": {it["name"]: {"status": it["status"], "seconds": it.get("seconds"),
                                            "file": os.path.relpath(it["file"], top) if it.get("file") else None,
                                            "summary": res.get(it["name"])} for it in items}}
    json.dump(gathered, open(stem + ".json", "w"), indent=1)
    rel = os.path.relpath(stem, top)
    how = "`make bench-quick`" if mode == "quick" else "`make bench`"
    head = (f"Measured by {how} on {date}, {cpu} ({cores} cores, shared with other work: load average "
            f"{' '.join(load)} at the end), commit {rev}; `{rel}.json`.")
    rows = headline_rows(res, {it["name"]: it["status"] for it in items})
    table = "\n".join([head, "", "| benchmark | result |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    parts = [f"# bench/run {mode}, {date}", "", table, ""]
    for it in items:
        status = {"ok": "", "failed": " — **failed**", "reused": " — reused, not rerun"}[it["status"]]
        secs = f", {it['seconds']} s" if it.get("seconds") is not None else ""
        parts += [f"## {TITLES.get(it['name'], it['name'])}{status}{secs}", "", md[it["name"]] or "(no output)", ""]
    full = "\n".join(parts)
    open(stem + ".md", "w").write(full + "\n")
    if partial:  # a subset must not replace the tables of a whole run
        print(full)
        print(f"\nbench/run: {stem}.json, {stem}.md (a subset: README tables left as they are)")
        return
    block(os.path.join(top, "README.md"), "headline", table)
    latest = "\n".join([head, ""] + parts[4:])
    block(os.path.join(top, "bench", "README.md"), "results", latest.replace("\n## ", "\n### "))
    if md.get("engine"):
        block(os.path.join(top, "docs", "engine.md"), "engine",
              f"{head}\n\n{md['engine']}")
    print(full)
    print(f"\nbench/run: {stem}.json, {stem}.md; README.md, bench/README.md and docs/engine.md updated")


if __name__ == "__main__":
    main()
