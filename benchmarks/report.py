"""The benchmark report: `python -m benchmarks.report` from the repository root.

Runs the benchmark suite (pytest-benchmark, JSON saved as OUT/benchmarks.json), or reads
a saved run with --json, and writes OUT/report.md: fastnn, NumPy, PyTorch and Keras
(TensorFlow) side by side per op, shape and thread count, with ratios and fastnn's % of
this machine's ceiling (the probes saved in the JSON's machine_info), the epoch scaling
over batch size and threads, the architectures group and small-batch inference. With
matplotlib (`pip install -e .[plot]`) it also writes PNG plots: GFLOP/s vs size for
GEMM, per-op bars, thread scaling, and the architectures' speed-ups.

    python -m benchmarks.report                   # full run, ~15 minutes on 2 cores
    python -m benchmarks.report --quick           # small sizes, few rounds: a smoke test
    python -m benchmarks.report --json run.json   # report a saved run
    python -m benchmarks.report -- -k gemm        # extra pytest arguments after --
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ["gemm", "conv", "linear", "pool", "activation", "loss", "optimizer", "training step",
          "training epoch", "architecture step", "architecture epoch", "inference"]
OWN_TABLES = {"architecture step", "architecture epoch", "inference"}  # not in the op tables
# library in extra_info -> report column; a column keeps its fastest library
COLUMNS = {"fastnn": "fastnn", "numpy": "NumPy", "numpy-ref": "NumPy", "torch": "PyTorch",
           "torch-foreach": "PyTorch", "keras": "Keras", "fastnn-predict": "fastnn predict"}
PEERS = ["NumPy", "PyTorch", "Keras"]
COLORS = {"fastnn": "tab:red", "NumPy": "tab:blue", "PyTorch": "tab:orange",
          "Keras": "tab:green"}
EPOCH = 60_000  # the reference models' epochs as 60,000-sample (MNIST) equivalents
# pytest-benchmark settings: the full run warms each case up (at most 20 calls) and
# measures for 0.5 s (at least 5 rounds); the quick run's bare minimum
FULL_ARGS = ["--benchmark-max-time=0.5", "--benchmark-warmup=on",
             "--benchmark-warmup-iterations=20"]
QUICK_ARGS = ["--benchmark-min-rounds=1", "--benchmark-max-time=0.001",
              "--benchmark-warmup=off"]


def run_suite(json_path, quick, extra):
    """Run the benchmark suite, saving pytest-benchmark's JSON; returns the wall time."""
    env = dict(os.environ, FASTNN_BENCH_QUICK="1" if quick else "0")
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-q", f"--benchmark-json={json_path}",
           "--benchmark-columns=median,rounds", *(QUICK_ARGS if quick else FULL_ARGS), *extra]
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    status = subprocess.call(cmd, cwd=ROOT, env=env)
    if status != 0:
        sys.exit(f"benchmark run failed (pytest exit status {status})")
    return time.perf_counter() - start


def load(path):
    """(machine info, rows): one row per (group, op, shape, threads) with each
    column's median time and the row's extra_info (op, shape, flops or nbytes, ...)."""
    run = json.loads(Path(path).read_text())
    machine = run["machine_info"]
    fastnn_info = machine.get("fastnn")
    if fastnn_info is None:
        sys.exit(f"{path}: no machine_info['fastnn']: not a run of this benchmark suite")
    rows = {}
    for bench in run["benchmarks"]:
        info, seconds = bench["extra_info"], bench["stats"]["median"]
        if "op" not in info or COLUMNS.get(info["library"]) is None:
            continue
        key = (bench["group"], info["op"], info["shape"], info["threads"])
        row = rows.setdefault(key, {"info": info, "times": {}, "isas": {}})
        if info["library"] == "fastnn":
            row["isas"][info.get("isa")] = seconds
        else:
            column = COLUMNS[info["library"]]
            row["times"][column] = min(seconds, row["times"].get(column, float("inf")))
    for row in rows.values():
        isas = row["isas"]
        if isas:  # the ISA users get by default, or the only one a case ran on
            row["times"]["fastnn"] = isas.get(fastnn_info["default_isa"],
                                              next(iter(isas.values())))
    order = {g: i for i, g in enumerate(GROUPS)}
    rows = dict(sorted(rows.items(), key=lambda kv: order.get(kv[0][0], len(GROUPS))))
    return run, rows


def peaks(run, threads):
    p = run["machine_info"]["fastnn"]["peaks"].get(str(threads))
    return (p["fma_gflops"], p["copy_gbs"]) if p else (None, None)


def fmt_time(seconds):
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def rate(info, seconds):
    """(value, unit) of throughput: GFLOP/s for compute-bound rows, GB/s otherwise."""
    if info.get("flops"):
        return info["flops"] / seconds / 1e9, "GFLOP/s"
    if info.get("nbytes"):
        return info["nbytes"] / seconds / 1e9, "GB/s"
    return None, ""


def peer_time(rows, key, column):
    """A peer's time at the row's thread count, or its 1-thread time (NumPy's
    elementwise ops are single-threaded, so only that one is measured); flag if so."""
    seconds = rows[key]["times"].get(column)
    if seconds is None and key[3] != 1:
        one = rows.get(key[:3] + (1,))
        seconds = one and one["times"].get(column)
        return seconds, seconds is not None
    return seconds, False


def table(run, rows, threads):
    """Markdown table of the rows measured on `threads` threads."""
    head = ("| op | shape | threads | fastnn | " + " | ".join(PEERS) + " | "
            + " | ".join(f"{p} / fastnn" for p in PEERS) + " | fastnn rate | % of peak |")
    lines = [head, "|" + " --- |" * (6 + 2 * len(PEERS))]
    fma, copy = peaks(run, threads)
    for key, row in rows.items():
        if key[3] != threads or "fastnn" not in row["times"] or key[0] in OWN_TABLES:
            continue
        info, fast = row["info"], row["times"]["fastnn"]
        cells = [key[1], key[2], str(threads), fmt_time(fast)]
        ratios = []
        for column in PEERS:
            seconds, one_thread = peer_time(rows, key, column)
            mark = " ¹" if one_thread else ""
            cells.append(fmt_time(seconds) + mark)
            ratios.append(f"{seconds / fast:.2f}x{mark}" if seconds else "")
        value, unit = rate(info, fast)
        ceiling = fma if unit == "GFLOP/s" else copy
        cells += ratios + [f"{value:.1f} {unit}" if value else "",
                           f"{100 * value / ceiling:.0f}%" if value and ceiling else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epoch_table(rows, threads_list):
    """Samples/s of the epoch benchmark per model, batch size, library and thread count."""
    head = "| model | batch | library | " + " | ".join(f"{t} thr" for t in threads_list)
    lines = [head + " | speed-up |", "|" + " --- |" * (len(threads_list) + 4)]
    series = epoch_series(rows)
    for (model, batch, column), points in sorted(series.items()):
        cells = [f"{points[t]:,.0f}" if t in points else "" for t in threads_list]
        lo, hi = points.get(threads_list[0]), points.get(threads_list[-1])
        gain = f"{hi / lo:.2f}x" if lo and hi and len(threads_list) > 1 else ""
        lines.append(f"| {model} | {batch} | {column} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def ratio(peer, fast):
    return f"{peer / fast:.2f}x" if peer and fast else ""


def geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def epoch60k_table(rows, threads):
    """Seconds per 60,000-sample epoch of the reference models (from samples/s), each
    library and the peers' time / fastnn's, on `threads` threads."""
    lines = ["| model | batch | fastnn | PyTorch | Keras | PyTorch / fastnn | Keras / fastnn |",
             "|" + " --- |" * 7]
    series = epoch_series(rows)
    for model, batch in sorted({(m, b) for m, b, _ in series}):
        secs = {c: EPOCH / series[(model, batch, c)][threads]
                for c in ("fastnn", "PyTorch", "Keras")
                if threads in series.get((model, batch, c), {})}
        fast = secs.get("fastnn")
        lines.append(f"| {model} | {batch} | " + " | ".join(
            f"{secs[c]:.2f} s" if c in secs else "" for c in ("fastnn", "PyTorch", "Keras"))
            + f" | {ratio(secs.get('PyTorch'), fast)} | {ratio(secs.get('Keras'), fast)} |")
    return "\n".join(lines)


def isa_table(run, rows):
    """Each fastnn variant's time on the cases timed on more than one: the default's time
    over the fastest's, and generic's over the slowest SIMD variant's (op groups)."""
    isas, default = run["machine_info"]["fastnn"]["isas"], \
        run["machine_info"]["fastnn"]["default_isa"]
    lines = ["| op | shape | threads | " + " | ".join(isas)
             + " | default / fastest | generic / slowest SIMD |", "|" + " --- |" * (len(isas) + 5)]
    worst_default, worst_simd, cases = [], [], 0
    for (_, op, shape, threads), row in rows.items():
        times = row["isas"]
        if len(times) < 2 or default not in times:
            continue
        cases += 1
        over_best = times[default] / min(times.values())
        simd = [t for isa, t in times.items() if isa != "generic"]
        over_simd = times["generic"] / max(simd) if "generic" in times and simd else None
        worst_default.append((over_best, f"{op} {shape} {threads} thr"))
        if over_simd:
            worst_simd.append((over_simd, f"{op} {shape} {threads} thr"))
        lines.append(f"| {op} | {shape} | {threads} | "
                     + " | ".join(fmt_time(times.get(isa)) for isa in isas)
                     + f" | {over_best:.2f}x | " + (f"{over_simd:.2f}x" if over_simd else "")
                     + " |")
    if not cases:
        return None
    summary = [f"{cases} cases. Default ({default}) within 3% of the fastest variant on "
               f"{sum(r <= 1.03 for r, _ in worst_default)} of {len(worst_default)}; "
               f"worst {max(worst_default)[0]:.2f}x ({max(worst_default)[1]})."]
    if worst_simd:
        summary.append(f"Every SIMD variant at least as fast as generic on "
                       f"{sum(r >= 1 for r, _ in worst_simd)} of {len(worst_simd)}; worst "
                       f"{min(worst_simd)[0]:.2f}x ({min(worst_simd)[1]}).")
    return " ".join(summary) + "\n\n" + "\n".join(lines)


def architecture_rows(rows):
    """{(kind, model, batch, threads): times by column} of the architectures group."""
    out = {}
    for (group, _, _, threads), row in rows.items():
        if group.startswith("architecture ") and "fastnn" in row["times"]:
            info = row["info"]
            out[(group.split()[1], info["model"], info["batch"], threads)] = row["times"]
    return out


def architecture_table(rows):
    """fastnn vs PyTorch vs Keras per architecture, kind, batch and thread count, with
    the geometric mean of the ratios per kind, batch and thread count."""
    lines = ["| model | kind | batch | threads | fastnn | PyTorch | Keras | PyTorch / fastnn "
             "| Keras / fastnn |", "|" + " --- |" * 9]
    arch = architecture_rows(rows)
    for kind, batch, threads in sorted({(k[0], k[2], k[3]) for k in arch},
                                       key=lambda k: (k[0] != "step", k[1], -k[2])):
        ratios = {"PyTorch": [], "Keras": []}
        for (k, model, b, t), times in arch.items():
            if (k, b, t) != (kind, batch, threads):
                continue
            fast = times["fastnn"]
            for column in ratios:
                if times.get(column):
                    ratios[column].append(times[column] / fast)
            lines.append(f"| {model} | {kind} | {batch} | {threads} | {fmt_time(fast)} | "
                         f"{fmt_time(times.get('PyTorch'))} | {fmt_time(times.get('Keras'))} | "
                         f"{ratio(times.get('PyTorch'), fast)} | "
                         f"{ratio(times.get('Keras'), fast)} |")
        means = [geomean(ratios[c]) for c in ratios]
        lines.append(f"| **geometric mean** | {kind} | {batch} | {threads} |  |  |  | "
                     + " | ".join(f"**{m:.2f}x**" if m else "" for m in means) + " |")
    return "\n".join(lines)


def inference_table(rows):
    """Latency of small-batch inference per model, batch and thread count."""
    lines = ["| model | batch | threads | fastnn model(x) | fastnn predict | PyTorch | Keras "
             "| PyTorch / fastnn | Keras / fastnn | predict / model(x) |", "|" + " --- |" * 10]
    for (group, _, _, threads), row in rows.items():
        if group != "inference" or "fastnn" not in row["times"]:
            continue
        info, times = row["info"], row["times"]
        fast = times["fastnn"]
        cells = [info["model"], str(info["batch"]), str(threads)] + [
            fmt_time(times.get(c)) for c in ("fastnn", "fastnn predict", "PyTorch", "Keras")]
        cells += [ratio(times.get("PyTorch"), fast), ratio(times.get("Keras"), fast),
                  ratio(times.get("fastnn predict"), fast)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epoch_series(rows):
    """{(model, batch, column): {threads: samples/s}} from the epoch rows."""
    series = defaultdict(dict)
    for (group, _, _, threads), row in rows.items():
        if group == "training epoch":
            info = row["info"]
            for column, seconds in row["times"].items():
                series[(info["model"], info["batch"], column)][threads] = info["samples"] / seconds
    return series


def machine_text(run):
    m, f = run["machine_info"], run["machine_info"]["fastnn"]
    cpu = m.get("cpu", {}).get("brand_raw") or m.get("processor", "")
    lines = [f"Measured {run['datetime'][:16].replace('T', ' ')} UTC on {cpu}, "
             f"{f['cpu_count']} logical CPUs; fastnn {f['version']}, ISAs {', '.join(f['isas'])} "
             f"(default and tables: {f['default_isa']}); Python {m.get('python_version', '')}."
             + (" QUICK MODE: small sizes, single rounds; not representative." if f["quick"]
                else "")]
    load = f.get("load_average")
    if load and load["start"] is not None:
        # at the start: the end also counts this run's own threads
        lines.append(f"1-minute load average at the start {load['start']:.1f}, at the end "
                     f"{load['end']:.1f} ({f['cpu_count']} CPUs: a start above that means "
                     "others' work shared the cores)."
                     + (" THE CORES WERE SHARED: times are not representative."
                        if load["start"] > f["cpu_count"] else ""))
    for t, p in f["peaks"].items():
        lines.append(f"Ceiling on {t} thread(s) (fastnn probes): FMA {p['fma_gflops']:.1f} "
                     f"GFLOP/s, copy {p['copy_gbs']:.1f} GB/s.")
    return "\n".join(lines)


def plot(run, rows, out):
    """Write the PNG plots; returns their file names ([] without matplotlib)."""
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    threads_list = sorted({key[3] for key in rows})
    top = threads_list[-1]
    files = []

    # GEMM: GFLOP/s vs square size, per library and thread count, with the FMA ceiling
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for t in threads_list:
        for column in ["fastnn"] + PEERS:
            pts = sorted((row["info"]["size"], row["info"]["flops"] / row["times"][column] / 1e9)
                         for key, row in rows.items()
                         if key[0] == "gemm" and key[3] == t and "size" in row["info"]
                         and column in row["times"])
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f"{column}, {t} thr",
                        color=COLORS[column], linestyle="-" if t == top else "--")
        fma = peaks(run, t)[0]
        if fma:
            ax.axhline(fma, color="grey", linewidth=0.8, linestyle="-" if t == top else "--",
                       label=f"FMA peak, {t} thr")
    sizes = sorted({row["info"]["size"] for row in rows.values() if "size" in row["info"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set(xlabel="n (n x n x n SGEMM)", ylabel="GFLOP/s", title="SGEMM throughput vs size")
    ax.legend(fontsize=7)
    files.append(save(fig, out / "gemm_gflops.png"))

    # per-op bars at the top thread count: each library's time relative to fastnn's
    bars = [(f"{k[1]} {k[2]}", {c: (peer_time(rows, k, c)[0] or 0) / r["times"]["fastnn"]
                                for c in PEERS})
            for k, r in rows.items() if k[3] == top and k[0] not in OWN_TABLES | {"gemm"}
            and "fastnn" in r["times"]]
    if bars:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(bars) + 1.5))
        height = 0.8 / len(PEERS)
        for j, column in enumerate(PEERS):
            ax.barh([i + j * height for i in range(len(bars))],
                    [b[1][column] for b in bars], height, label=column, color=COLORS[column])
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks([i + height / 2 for i in range(len(bars))], [b[0] for b in bars],
                      fontsize=7)
        ax.invert_yaxis()
        ax.set(xscale="log", xlabel="time / fastnn's time (> 1: fastnn faster)",
               title=f"fastnn vs NumPy, PyTorch and Keras, {top} thread(s)")
        ax.legend(fontsize=7)
        files.append(save(fig, out / "ops_vs_fastnn.png"))

    # thread scaling of the epoch: samples/s vs threads per model and batch size
    series = epoch_series(rows)
    models = sorted({m for m, _, _ in series})
    if models:
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
        batches = sorted({b for _, b, _ in series})
        for ax, model in zip(axes[0], models):
            for (m, batch, column), points in sorted(series.items(), key=lambda kv: kv[0][2]):
                if m == model:
                    ts = sorted(points)
                    ax.plot(ts, [points[t] for t in ts], marker="o",
                            color=plt.cm.viridis(batches.index(batch) / len(batches)),
                            linestyle="-" if column == "fastnn" else "--",
                            label=f"{column}, batch {batch}")
            ax.set(xlabel="threads", ylabel="samples/s", title=f"{model} training epoch",
                   xticks=threads_list)
            ax.legend(fontsize=7)
        files.append(save(fig, out / "epoch_scaling.png"))

    # architectures: each peer's time / fastnn's per model and batch, step and epoch
    arch = {k[:3]: v for k, v in architecture_rows(rows).items() if k[3] == top}
    kinds = sorted({k[0] for k in arch}, key=lambda k: k != "step")
    if kinds:
        labels = sorted({(k[1], k[2]) for k in arch})
        fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 0.45 * len(labels) + 1.5),
                                 squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            for j, column in enumerate(("PyTorch", "Keras")):
                speedups = [arch.get((kind, m, b), {}).get(column, 0) /
                            arch.get((kind, m, b), {}).get("fastnn", 1) for m, b in labels]
                ax.barh([i + j * 0.4 for i in range(len(labels))], speedups, 0.4,
                        label=f"over {column}", color=COLORS[column])
            ax.axvline(1.0, color="black", linewidth=1)
            ax.set_yticks([i + 0.2 for i in range(len(labels))],
                          [f"{m} b{b}" for m, b in labels], fontsize=7)
            ax.invert_yaxis()
            ax.set(xscale="log", xlabel="fastnn's speed-up (peer's time / fastnn's)",
                   title=f"Architectures: training {kind}, {top} thread(s)")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
            ax.tick_params(axis="x", which="both", labelsize=7)
            ax.legend(fontsize=7)
        files.append(save(fig, out / "architectures.png"))
    return files


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path.name


def report(run, rows, out, wall=None, command=None):
    threads_list = sorted({key[3] for key in rows})
    top = threads_list[-1] if threads_list else 1
    parts = ["# fastnn benchmark report", "", machine_text(run)]
    if command:
        parts.append(f"Command: `{command}`"
                     + (f", wall time {wall / 60:.1f} min." if wall else "."))
    parts += ["", "Median times; ratios are the peer's time / fastnn's (> 1: fastnn faster); "
              "NumPy is OpenBLAS for GEMM and the pure-NumPy float32 reference "
              "(fastnn.reference) elsewhere; PyTorch is the faster of its variants (Adam: "
              "default or foreach); Keras is Keras 3 on TensorFlow's CPU build, run in its "
              "own process per thread count on NHWC data (training step: `train_on_batch`, "
              "epoch: `fit`, inference: `model(x, training=False)`; "
              "benchmarks/keras_runner.py); ¹ NumPy on 1 thread (its elementwise ops are "
              "single-threaded); % of peak: GFLOP/s against the FMA probe, GB/s against the "
              "copy probe, on the same thread count.", "",
              f"## {top} thread(s)", "", table(run, rows, top)]
    for t in threads_list[:-1]:
        parts += ["", f"## {t} thread(s)", "", table(run, rows, t)]
    if epoch_series(rows):
        parts += ["", "## Training epoch scaling (samples/s)", "",
                  "The same number of samples per run at every batch size; fastnn and "
                  "PyTorch on every thread count timed in turns, round by round.", "",
                  epoch_table(rows, threads_list), "",
                  f"## Reference models: a {EPOCH:,}-sample epoch, {top} thread(s)", "",
                  "Seconds from the epoch benchmark's samples/s.", "",
                  epoch60k_table(rows, top)]
    if architecture_rows(rows):
        parts += ["", "## Architectures: training step and epoch", "",
                  "The same network in the three libraries by construction "
                  "(benchmarks/twins.py); ratios: the peer's time / fastnn's. fastnn and "
                  "PyTorch on every thread count timed in turns, round by round; Keras in "
                  "its own process.", "",
                  architecture_table(rows)]
    variants = isa_table(run, rows)
    if variants:
        parts += ["", "## Instruction-set variants", "",
                  "fastnn's median time per variant where a case ran on more than one (the "
                  "op groups on every variant, training on the SIMD ones, in turns round by "
                  "round); the tables above show the default.", "", variants]
    if any(key[0] == "inference" for key in rows):
        parts += ["", "## Small-batch inference latency", "",
                  "Eval mode, median of many calls, fastnn's and PyTorch's in turns, block "
                  "by block; ratios against fastnn's model(x).", "",
                  inference_table(rows)]
    files = plot(run, rows, out)
    parts += ["", "## Plots", ""]
    parts += [f"![{f}]({f})" for f in files] or [
        "Skipped: matplotlib is not installed (`pip install -e .[plot]`)."]
    text = "\n".join(parts) + "\n"
    (out / "report.md").write_text(text)
    return text, files


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="report this saved pytest-benchmark JSON "
                        "instead of running the suite")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="output directory (default: benchmarks/results)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and single rounds (a smoke test of suite and report)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wall = command = None
    path = args.json
    if path is not None and not path.is_file():
        sys.exit(f"--json {path}: no such file")
    if path is None:
        path = args.out / "benchmarks.json"
        wall = run_suite(path, args.quick, args.pytest_args)
        command = shlex.join(["python", "-m", "benchmarks.report"]
                             + (["--quick"] if args.quick else [])
                             + (["--", *args.pytest_args] if args.pytest_args else []))
    run, rows = load(path)
    if not rows:
        sys.exit(f"{path}: no benchmark results (was the run made with --benchmark-disable?)")
    text, files = report(run, rows, args.out, wall, command)
    print(text.split("\n## ")[0])
    print(f"wrote {args.out / 'report.md'}" + (f" and {', '.join(files)}" if files else
                                                "; plots skipped: matplotlib not installed"))
    if wall is not None:
        print(f"benchmark run: {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
