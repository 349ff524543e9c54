"""Where the time of a training step goes: `model.profile(x, y)` on any model.

It runs `repeat` training steps on one batch (forward, loss, backward, optimizer step),
timing the forward and backward call of every step the model's graph runs (a layer, or
a Conv2d and the MaxPool2d it is fused with), and prints and returns per step the
median times, FLOPs, GFLOP/s and the share of this machine's FP32 FMA peak (fastnn's own
probe, measured once per thread count), then the loss, the optimizer and the total.

FLOPs count 2 per multiply-add of the matrix products of Linear and Conv2d layers:
forward, weight gradient where the weight is trainable, and input gradient where the
backward computes one (not in the first layer with parameters). Bias additions,
activations and pooling are memory-bound and not counted."""
import sys
import time

import numpy as np

from . import _core, losses, optim
from .nn.module import _zero_grads as zero_grads

__all__ = ["profile", "peak_gflops", "training_flops"]

_peaks = {}


def peak_gflops():
    """This machine's FP32 FMA throughput in GFLOP/s with the best ISA on
    get_num_threads() threads: `fastnn._core.fma_peak()`, probed once per thread count."""
    threads = _core.get_num_threads()
    if threads not in _peaks:
        isa = _core.get_isa()
        _core.set_isa(_core.supported_isas()[-1])
        try:
            _peaks[threads] = _core.fma_peak()
        finally:
            _core.set_isa(isa)
    return _peaks[threads]


def _steps(model, shape):
    """The steps the model's graph runs (a fused Conv2d + MaxPool2d is one) for a batch
    of input `shape`: (step, name, output shape, forward FLOPs, backward FLOPs, or None
    when the step's backward is skipped)."""
    graph = model._graph_for((shape,))
    needs = {id(step): need for step, need in graph.backward_plan(need_input_grad=False)}
    shapes = dict(zip(graph.input_slots, [shape]))
    steps = []
    for step in graph.steps:
        out = [shapes[i] for i in step.inputs] if step.merge else shapes[step.inputs[0]]
        macs = 0
        for layer in step.layers:
            out = layer.output_shape(out)
            macs += layer.macs(out)
        shapes[step.output] = out
        name = f"{step.name}: " + " + ".join(type(layer).__name__ for layer in step.layers)
        products = bool(needs.get(id(step))) + any(p.requires_grad for p in step.parameters())
        steps.append((step, name, out, 2 * macs,
                      None if id(step) not in needs else 2 * macs * products))
    return graph, steps


def training_flops(model, input_shape):
    """FLOPs of one training step of `model` on a batch of `input_shape` (batch first),
    counted as in the module docstring."""
    return sum(f + (b or 0) for *_, f, b in _steps(model, tuple(input_shape))[1])


def _median_ms(seconds):
    return float(np.median(seconds)) * 1e3


def _rate(row, peak):
    """GFLOP/s and % of peak of a row, None for rows without FLOPs."""
    if not row["flops"] or row["ms"] <= 0:
        return None, None
    gflops = row["flops"] / row["ms"] / 1e6
    return gflops, 100.0 * gflops / peak


def profile(model, x, y, *, loss="cross_entropy", optimizer="adam", repeat=10, file=None):
    """Profile a training step of `model` on the batch (x, y).

    loss: a name or fastnn.losses.Loss; optimizer: a name ('adam', 'sgd', 'adamw': a
    fresh one, lr 1e-3, which does not change the speed) or a fastnn.optim.Optimizer.
    Runs one warm-up step and `repeat` timed steps; the model's weights, buffers, mode and the
    optimizer's state are restored afterwards (parameter gradients are left as the last
    step wrote them). Prints the table to `file` (default stdout) and returns its rows:
    dicts with layer, output_shape, forward_ms, backward_ms, ms (their sum), flops,
    gflops, peak_pct, per layer, then "loss", "optimizer" and "total" (the sums of the
    rows above it). None marks what does not apply: backward_ms of the layers before the
    first one with parameters (their backward is skipped), forward_ms/backward_ms of the
    optimizer, gflops/peak_pct of rows without FLOPs."""
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ValueError(f"profile: repeat must be a positive int, got {repeat!r}")
    loss_fn = losses.get(loss)
    x, y = model._prepare(x, y, loss_fn, "profile")
    params = list(model.parameters())  # zeroed at every step
    if isinstance(optimizer, optim.Optimizer):
        opt, opt_state = optimizer, optimizer.state_dict()
    else:
        opt, opt_state = optim.get(optimizer, params, lr=1e-3), None
    saved = {k: v.copy() for k, v in model.state_dict().items()}  # weights and buffers
    clock = time.perf_counter
    with model._mode(True, x.shape):
        graph, steps = _steps(model, x.shape)
        fwd = np.zeros((repeat + 1, len(steps)))
        bwd = np.zeros((repeat + 1, len(steps)))
        loss_s = np.zeros((repeat + 1, 2))
        opt_s = np.zeros(repeat + 1)
        try:
            for r in range(repeat + 1):  # step 0 warms up buffers, caches and thread pools
                model.__dict__["_graph"] = graph
                out = graph.forward((x,), times=fwd[r])
                t = clock()
                loss_fn(out, y)
                t1 = clock()
                grad = loss_fn.backward()
                loss_s[r] = t1 - t, clock() - t1
                zero_grads(params, True)  # backward writes, not adds
                graph.backward(grad, times=bwd[r])
                t = clock()
                opt.step()
                opt_s[r] = clock() - t
        finally:
            model.load_state_dict(saved)
            if opt_state is not None:
                opt.load_state_dict(opt_state)

    def row(name, out, forward_ms, backward_ms, flops=0, ms=None):
        return {"layer": name, "output_shape": out, "forward_ms": forward_ms,
                "backward_ms": backward_ms,
                "ms": forward_ms + (backward_ms or 0.0) if ms is None else ms,
                "flops": flops}

    rows = []
    for k, (_, name, out, f_flops, b_flops) in enumerate(steps):
        rows.append(row(name, out, _median_ms(fwd[1:, k]),
                        _median_ms(bwd[1:, k]) if b_flops is not None else None,
                        f_flops + (b_flops or 0)))
    rows.append(row(f"loss: {type(loss_fn).__name__}", (), _median_ms(loss_s[1:, 0]),
                    _median_ms(loss_s[1:, 1])))
    rows.append(row(f"optimizer: {type(opt).__name__}", (), None, None, ms=_median_ms(opt_s[1:])))
    rows.append(row("total", (), *(sum(r[k] or 0.0 for r in rows)
                                   for k in ("forward_ms", "backward_ms")),
                    flops=sum(r["flops"] for r in rows), ms=sum(r["ms"] for r in rows)))
    peak = peak_gflops()
    for row in rows:
        row["gflops"], row["peak_pct"] = _rate(row, peak)
    print(_table(rows, x.shape[0], repeat, peak), file=file or sys.stdout)
    return rows


def _table(rows, batch, repeat, peak):
    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    total = rows[-1]["ms"]
    header = ("Layer", "Output shape", "Forward ms", "Backward ms", "% of step", "GFLOP/s",
              "% of peak")
    body = [(r["layer"], f"({', '.join(map(str, r['output_shape']))})" if r["output_shape"] else "",
             cell(r["forward_ms"], ".3f"), cell(r["backward_ms"], ".3f"),
             f"{100 * r['ms'] / total:.1f}" if total > 0 else "-",
             cell(r["gflops"], ".1f"), cell(r["peak_pct"], ".1f")) for r in rows]
    widths = [max(len(line[c]) for line in [header] + body) for c in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if c < 2 else f"{{:>{w}}}" for c, w in enumerate(widths))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [f"Training step profile: batch {batch}, {_core.get_num_threads()} thread(s), "
             f"ISA {_core.get_isa()}, median of {repeat} steps; FMA peak {peak:.1f} GFLOP/s "
             f"(fastnn probe)",
             rule, fmt.format(*header), rule]
    lines += [fmt.format(*line) for line in body[:-1]] + [rule, fmt.format(*body[-1])]
    return "\n".join(lines)
