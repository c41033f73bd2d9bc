"""Which CPU a benchmark ran on, so that figures from different machines are never mixed in one table."""

from __future__ import annotations

import os
import platform

# instruction-set extensions that change which kernels TensorFlow's CPU build can use
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break                       # end of the first processor
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def describe_cpu(path: str = "/proc/cpuinfo") -> dict:
    """``{"model": ..., "label": ...}`` and the details: vendor, family / model numbers, usable cores, ISA flags.

    ``label`` (e.g. ``"AMD EPYC (family 25, model 1), 2 cores, avx2"``) is what the tables in
    benchmarks/RESULTS.md are grouped by: two machines that report the same model name can differ in family,
    model number or instruction set, and those decide the speed.
    """
    info = _cpuinfo(path)
    model = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    isa = [f for f in ISA_FLAGS if f in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    numbers = ", ".join(f"{k} {info[k2]}" for k, k2 in (("family", "cpu family"), ("model", "model")) if k2 in info)
    label = f"{model}{f' ({numbers})' if numbers else ''}, {cores} cores{', ' + ' '.join(isa) if isa else ''}"
    return dict(model=model, vendor=info.get("vendor_id", ""), family=info.get("cpu family", ""),
                model_number=info.get("model", ""), cores=cores, isa=isa, label=label)
