"""The training-speed bench: FLOP accounting against a hand count, and the CLI's JSON."""

import json

import pytest

from cycle_medgan_tf.bench.train import bench_config, build_trainer, step_flops
from tests.conftest import run_module


def _cyclegan_macs_by_hand(side: int) -> tuple[int, int]:
    """Multiply-adds of one ResNet-9 generator and one PatchGAN forward pass on a side x side x 1 image."""
    s2, s4, s8 = side // 2, side // 4, side // 8
    generator = (side * side * 49 * 1 * 64            # e1: 7x7, 1 -> 64
                 + s2 * s2 * 9 * 64 * 128              # e2: 3x3 stride 2
                 + s4 * s4 * 9 * 128 * 256             # e3: 3x3 stride 2
                 + 18 * s4 * s4 * 9 * 256 * 256        # 9 residual blocks x 2 convs
                 + s4 * s4 * 9 * 256 * 128             # d1: transposed, per input pixel
                 + s2 * s2 * 9 * 128 * 64              # d2: transposed, per input pixel
                 + side * side * 49 * 64 * 1)          # out: 7x7, 64 -> 1
    discriminator = (s2 * s2 * 16 * 1 * 64 + s4 * s4 * 16 * 64 * 128 + s8 * s8 * 16 * 128 * 256
                     + s8 * s8 * 16 * 256 * 512 + s8 * s8 * 16 * 512 * 1)
    return generator, discriminator


@pytest.mark.parametrize("side,batch", [(64, 1), (32, 2)])
def test_cyclegan_step_flops_match_hand_count(side, batch):
    trainer = build_trainer(bench_config("cyclegan", side, batch, "float32", False))
    g, d = _cyclegan_macs_by_hand(side)
    # 4 generator and 6 discriminator calls per step; FLOPs = 2 x MACs; backward = 2 x forward
    assert step_flops(trainer)["total"] == batch * 3 * 2 * (4 * g + 6 * d)


def test_cycle_medgan_costs_more_flops_than_cyclegan_and_unit_counts():
    # 64: the shipped extractor's native scale on the default data (32 would be coarser: refused)
    base = step_flops(build_trainer(bench_config("cyclegan", 64, 1, "float32", False)))["total"]
    medgan = step_flops(build_trainer(bench_config("cycle_medgan", 64, 1, "float32", False)))
    assert medgan["total"] > base
    assert set(medgan["per_sample_forward"]) >= {"extractor_real", "extractor_reconstructed"}
    unit = step_flops(build_trainer(bench_config("unit", 32, 1, "float32", False)))
    assert unit["total"] > 0 and len(unit["per_sample_forward"]) == 4


def test_bench_cli_prints_one_json_line():
    result = run_module("cycle_medgan_tf.bench.train", "--model=cyclegan", "--size=32", "--batch=1", "--steps=2",
                        "--warmup=1", "--peak_repeats=1", "--versus_plain_conv", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["cpu"]["label"] and record["cpu"]["cores"] >= 1          # results are grouped by machine
    versus = record["versus_plain_conv"]
    assert versus["steps"] == 2 and versus["plain_conv_step_s_median"] > 0 and versus["speedup"] > 0
    for key in ("step_s_median", "img_per_s", "gflop_per_step", "gflops_achieved", "conv_peak_gflops",
                "fraction_of_peak", "fraction_of_peak_interleaved"):
        assert record[key] > 0, key
    assert record["gflops_achieved"] == pytest.approx(record["gflop_per_step"] / record["step_s_median"], rel=0.01)


def test_bench_cli_rejects_bad_size():
    result = run_module("cycle_medgan_tf.bench.train", "--size=30", timeout=120)
    assert result.returncode == 2
    assert "error:" in result.stderr and "multiple of 4" in result.stderr


def test_sweep_summary_keeps_settings_and_medians_measurements():
    from cycle_medgan_tf.bench.sweep import summarise

    records = [dict(model="cyclegan", size=128, step_s_median=t, step_s_min=t - 0.1, fraction_of_peak_interleaved=f)
               for t, f in ((2.0, 0.8), (1.0, 0.9), (3.0, 0.7))]
    out = summarise(records)
    assert out["model"] == "cyclegan" and out["size"] == 128 and out["rounds"] == 3
    assert out["step_s_median"] == 2.0 and out["fraction_of_peak_interleaved"] == 0.8
    assert out["step_s_best"] == pytest.approx(0.9) and out["fraction_of_peak_interleaved_best"] == 0.9


def test_describe_cpu_reads_the_first_processor(tmp_path):
    from cycle_medgan_tf.bench.machine import describe_cpu

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n"
                       "model name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\n"
                       "model name\t: Other CPU\nflags\t\t: avx512f avx512_bf16\n")
    cpu = describe_cpu(str(cpuinfo))
    assert cpu["model"] == "AMD EPYC" and cpu["family"] == "25" and cpu["isa"] == ["avx2"]
    assert cpu["label"].startswith("AMD EPYC (family 25, model 1), ") and cpu["label"].endswith(" avx2")
    assert describe_cpu(str(tmp_path / "missing"))["model"]          # no /proc/cpuinfo: the platform's name
