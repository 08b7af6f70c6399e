#!/usr/bin/python3
"""pipeline.py — the measuring half of bench/pipeline.sh: watches one running `actiond serve`
(its /api/v1/streams and /metrics, /proc/PID/stat and status) and writes what it saw; then
gathers the runs into one results file and a Markdown table.
usage: pipeline.py sample --api URL --pid PID [--peer-pids P,P] --streams N --source-fps F
                          --minutes M --warmup S --every S --label TEXT --out RUN.json
       pipeline.py report OUT.json RUN.json...   (prints the Markdown summary; when the first run
                          is 5 minutes or longer, also writes it into bench/README.md's block)"""
import argparse
import json
import os
import platform
import re
import statistics as st
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
# Goals of issue 7 for 4 streams of 720p25 on this machine.
GOAL_P99_S, GOAL_RSS_MB, GOAL_GROWTH_MB_10MIN, GOAL_REALTIME = 1.0, 150.0, 5.0, 0.98


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def proc_cpu_s(pid):
    """user + system CPU seconds of a process, 0 when it is gone."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / TICK  # fields 14 and 15 of proc(5)


def proc_mem_mb(pid):
    """(VmRSS, VmHWM) in MB."""
    vals = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def latency_sums(metrics):
    """{stream: (sum_s, count)} from the actiond_window_latency_seconds summary."""
    out = {}
    for m in re.finditer(r'^actiond_window_latency_seconds_(sum|count)\{stream="([^"]+)"\} (\S+)$',
                         metrics, re.M):
        s, c = out.get(m.group(2), (0.0, 0))
        out[m.group(2)] = (float(m.group(3)), c) if m.group(1) == "sum" else (s, int(m.group(3)))
    return out


def inference_buckets(metrics):
    """[(le seconds, cumulative count)] of the actiond_inference_latency_seconds histogram."""
    return [(float(m.group(1)), int(m.group(2))) for m in re.finditer(
        r'^actiond_inference_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$', metrics, re.M)]


def bucket_quantile(first, last, q):
    """The upper bound of the histogram bucket holding quantile q of what came in between."""
    counts = [(le, n - m) for (le, n), (_, m) in zip(last, first)]
    total = counts[-1][1] if counts else 0
    for le, n in counts:
        if total and n >= q * total:
            return le
    return None


def snapshot(a, t0):
    streams = json.loads(get(a.api + "/api/v1/streams"))["streams"]
    metrics = get(a.api + "/metrics")
    sums = latency_sums(metrics)
    rss, hwm = proc_mem_mb(a.pid)
    snap = {"t": time.monotonic() - t0, "cpu_s": proc_cpu_s(a.pid),
            "peer_cpu_s": sum(proc_cpu_s(p) for p in a.peer_pids), "rss_mb": rss, "hwm_mb": hwm,
            "loadavg": open("/proc/loadavg").read().split()[:3],
            "inference_buckets": inference_buckets(metrics), "streams": {}}
    for s in streams:
        wl = s.get("window_latency_ms") or {}
        lsum, lcount = sums.get(s["id"], (0.0, 0))
        snap["streams"][s["id"]] = {
            "state": s["state"], "frames": s["frames"], "fps": s["fps"], "clips": s["clips"],
            "dropped": s["dropped"], "reconnects": s["reconnects"],
            "windows": wl.get("windows", 0), "p50_ms": wl.get("p50"), "p99_ms": wl.get("p99"),
            "max_ms": wl.get("max"), "lat_sum_s": lsum, "lat_count": lcount}
    return snap


def wait_running(a, t0, limit_s=60):
    while time.monotonic() - t0 < limit_s:
        try:
            s = snapshot(a, t0)
            if len(s["streams"]) == a.streams and all(
                    x["state"] == "running" and x["frames"] > 0 for x in s["streams"].values()):
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"pipeline.py: streams not all running after {limit_s} s")


def slope_per_min(points):
    """Least-squares slope of (t seconds, y) in y per minute; 0 for fewer than 3 points."""
    if len(points) < 3:
        return 0.0
    mt = st.mean(p[0] for p in points)
    my = st.mean(p[1] for p in points)
    den = sum((p[0] - mt) ** 2 for p in points)
    return 60 * sum((p[0] - mt) * (p[1] - my) for p in points) / den if den else 0.0


def minute_means(snaps):
    """Mean window latency (ms) per minute of the run, from the summary's sum and count."""
    out, start = [], snaps[0]
    for s in snaps[1:]:
        if s["t"] - start["t"] >= 60 or s is snaps[-1]:
            d_sum = sum(x["lat_sum_s"] - start["streams"][k]["lat_sum_s"] for k, x in s["streams"].items())
            d_n = sum(x["lat_count"] - start["streams"][k]["lat_count"] for k, x in s["streams"].items())
            if d_n:
                out.append(round(1000 * d_sum / d_n, 1))
            start = s
    return out


def le_ms(le):
    return None if le is None else (1000 * le if le != float("inf") else "+Inf")


def le_text(v):
    return "—" if v is None else (v if isinstance(v, str) else f"{v:g}")


def summarise(a, snaps, load_before):
    first, last = snaps[0], snaps[-1]
    dt = last["t"] - first["t"]
    per = {}
    for k, x in last["streams"].items():
        y = first["streams"][k]
        fps = (x["frames"] - y["frames"]) / dt
        per[k] = {"fps": round(fps, 2), "realtime": round(fps / a.source_fps, 4),
                  "clips": x["clips"] - y["clips"], "dropped": x["dropped"] - y["dropped"],
                  "reconnects": x["reconnects"] - y["reconnects"], "windows": x["windows"],
                  "p50_ms": x["p50_ms"], "p99_ms": x["p99_ms"], "max_ms": x["max_ms"]}
    vals = list(per.values())
    # RSS growth is judged after the first minute: buffers and caches fill while it starts.
    settled = [(s["t"], s["rss_mb"]) for s in snaps if s["t"] - first["t"] >= min(60, dt / 2)]
    slope = slope_per_min(settled)
    cpu = (last["cpu_s"] - first["cpu_s"]) / dt
    means = minute_means(snaps)
    res = {
        "label": a.label, "streams": a.streams, "source_fps": a.source_fps,
        "minutes": round(dt / 60, 2), "warmup_s": a.warmup,
        "fps_total": round(sum(v["fps"] for v in vals), 2),
        "realtime_min": min(v["realtime"] for v in vals),
        "clips": sum(v["clips"] for v in vals), "dropped": sum(v["dropped"] for v in vals),
        "reconnects": sum(v["reconnects"] for v in vals),
        "latency_p50_ms_median": st.median(v["p50_ms"] for v in vals),
        "latency_p99_ms_worst": max(v["p99_ms"] for v in vals),
        "latency_max_ms": max(v["max_ms"] for v in vals),
        "latency_mean_ms_per_minute": means,
        # Where the time goes: the daemon's histogram of a clip's last frame to its scores (all
        # streams), read as the upper bounds of the buckets holding p50 and p99.
        "inference_latency_p50_le_ms": le_ms(bucket_quantile(first["inference_buckets"],
                                                             last["inference_buckets"], 0.5)),
        "inference_latency_p99_le_ms": le_ms(bucket_quantile(first["inference_buckets"],
                                                             last["inference_buckets"], 0.99)),
        "cpu_cores": round(cpu, 3), "cpu_percent_of_machine": round(100 * cpu / os.cpu_count(), 1),
        "sources_cpu_cores": round((last["peer_cpu_s"] - first["peer_cpu_s"]) / dt, 3),
        "rss_mb_start": round(first["rss_mb"], 1), "rss_mb_end": round(last["rss_mb"], 1),
        "rss_mb_peak": round(last["hwm_mb"], 1), "rss_mb_per_min": round(slope, 3),
        "loadavg_before": load_before, "loadavg_after": last["loadavg"], "per_stream": per,
    }
    growth = slope * 10
    res["goals"] = {
        "realtime": res["realtime_min"] >= GOAL_REALTIME and res["dropped"] == 0,
        "p99_under_1s": res["latency_p99_ms_worst"] / 1000 < GOAL_P99_S,
        "rss_under_150mb": res["rss_mb_peak"] < GOAL_RSS_MB,
        # Ten minutes of the fitted slope, and the latency of the last minute against the first.
        "no_growth": (growth < GOAL_GROWTH_MB_10MIN and (len(means) < 2 or means[-1] <= 1.5 * means[0]))
        if dt >= 300 else None,
    }
    return res


def cmd_sample(a):
    a.peer_pids = [int(p) for p in a.peer_pids.split(",") if p]
    t0 = time.monotonic()
    load_before = open("/proc/loadavg").read().split()[:3]
    wait_running(a, t0)
    time.sleep(a.warmup)
    snaps = [snapshot(a, t0)]
    end = snaps[0]["t"] + 60 * a.minutes
    while snaps[-1]["t"] < end:
        time.sleep(max(0.0, min(a.every, end - snaps[-1]["t"])))
        snaps.append(snapshot(a, t0))
        done = snaps[-1]["t"] - snaps[0]["t"]
        if int(done) % 60 < a.every:
            print(f"pipeline.py: {a.label}: {done / 60:.1f}/{a.minutes} min, "
                  f"RSS {snaps[-1]['rss_mb']:.0f} MB", file=sys.stderr)
    res = summarise(a, snaps, load_before)
    res["samples"] = [{"t": round(s["t"], 1), "rss_mb": round(s["rss_mb"], 1),
                       "cpu_s": round(s["cpu_s"], 2), "loadavg": s["loadavg"]} for s in snaps]
    json.dump(res, open(a.out, "w"), indent=1)


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def yes(v):
    return "—" if v is None else ("met" if v else "NOT met")


def readme_block(text):
    """The long run's table in bench/README.md, between its markers (a quick run leaves it)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
    begin, end = "<!-- bench/pipeline.sh: begin -->", "<!-- bench/pipeline.sh: end -->"
    doc = open(path).read()
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + f"{begin}\n{text.rstrip()}\n{end}" + doc[doc.index(end) + len(end):]
        open(path, "w").write(doc)


def cmd_report(a):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report(a)
    print(buf.getvalue(), end="")
    runs = [json.load(open(p)) for p in a.runs]
    if runs[0]["minutes"] >= 5:
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        readme_block(f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `bench/pipeline.sh"
                     f"{' --sweep' if len(runs) > 1 else ''}`:\n\n" + buf.getvalue().replace(top + "/", ""))


def report(a):
    runs = [json.load(open(p)) for p in a.runs]
    doc = {"summary": {"cpu": cpu_name(), "cores": os.cpu_count(), "host": platform.node(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "runs": [{k: v for k, v in r.items() if k not in ("samples", "per_stream")}
                                for r in runs]},
           "runs": runs}
    json.dump(doc, open(a.out, "w"), indent=1)
    print("| streams × source × motion | min | decoded fps (real time) | dropped | window latency p50 / p99 / max ms "
          "| of which inference, p50 / p99 ≤ ms | CPU cores (sources) | RSS MB start / end / peak, growth MB/min "
          "| load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['label']} | {r['minutes']:.1f} | {r['fps_total']:.1f} ({r['realtime_min']:.3f}) "
              f"| {r['dropped']} | {r['latency_p50_ms_median']:.0f} / {r['latency_p99_ms_worst']:.0f} / "
              f"{r['latency_max_ms']:.0f} | {le_text(r.get('inference_latency_p50_le_ms'))} / "
              f"{le_text(r.get('inference_latency_p99_le_ms'))} "
              f"| {r['cpu_cores']:.2f} ({r['sources_cpu_cores']:.2f}) "
              f"| {r['rss_mb_start']:.0f} / {r['rss_mb_end']:.0f} / {r['rss_mb_peak']:.0f}, "
              f"{r['rss_mb_per_min']:+.2f} | {r['loadavg_before'][0]} → {r['loadavg_after'][0]} |")
    main = runs[0]
    g = main["goals"]
    print(f"\nGoals for {main['label']}: real time without drops {yes(g['realtime'])}; p99 < 1 s "
          f"{yes(g['p99_under_1s'])}; peak RSS < 150 MB {yes(g['rss_under_150mb'])}; no growth "
          f"(< 5 MB RSS in 10 min, last minute's latency ≤ 1.5× the first) "
          f"{yes(g['no_growth']) if g['no_growth'] is not None else '— (needs ≥ 5 min)'}. "
          f"CPU: {doc['summary']['cpu']}, {os.cpu_count()} cores; results: {a.out}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--api", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--peer-pids", default="")
    s.add_argument("--streams", type=int, required=True)
    s.add_argument("--source-fps", type=float, required=True)
    s.add_argument("--minutes", type=float, required=True)
    s.add_argument("--warmup", type=float, default=10)
    s.add_argument("--every", type=float, default=5)
    s.add_argument("--label", required=True)
    s.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("out")
    r.add_argument("runs", nargs="+")
    a = p.parse_args()
    cmd_sample(a) if a.cmd == "sample" else cmd_report(a)


if __name__ == "__main__":
    main()
