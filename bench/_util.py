"""Helpers for the benchmarks: timing (median of runs), peak memory, and one result line per target."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc


def timed(fn, repeat=3):
    """``(median seconds, last result)`` over ``repeat`` calls."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def peak_bytes(fn):
    """Peak bytes allocated through Python and NumPy while ``fn`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine():
    model = platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({platform.machine()}), {os.cpu_count()} cores, Python {platform.python_version()}"


def report(target, *, met, **figures):
    """Print the figures readably and as one JSON line that bench/run_all.py collects."""
    status = "target met" if met else "target not met"
    figures["load_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine, as the run ends
    print(f"[{target}] {status}")
    for k, v in figures.items():
        print(f"    {k}: {v:.4g}" if isinstance(v, float) else f"    {k}: {v}")
    print("RESULT " + json.dumps({"target": target, "status": status, **figures}, default=str))
    sys.stdout.flush()


def export_torchvision(name, path):
    """A torchvision classifier with random weights (seed 0) exported to ONNX at 224, batch dynamic."""
    import warnings

    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path
