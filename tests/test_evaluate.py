"""End to end: `python -m cycle_medgan_tf.evaluate` on a small store with tiny exported models; statistics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cycle_medgan_tf.data.store import write_store
from cycle_medgan_tf.evaluation import stats


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
TASK = "pet_ct"
WINDOW_A, WINDOW_B = (0.0, 5.0), (-1000.0, 2000.0)
TOP_KEYS = {"task", "split", "n_slices", "n_subjects", "columns", "metric_conventions", "seeds", "spread", "notes",
            "models", "per_subject", "comparisons", "slice_tests"}
METRIC_KEYS = ["ssim", "psnr", "lpips", "vif"]
CT_KEYS = ["mae_hu", "me_hu", "ssim_brain", "psnr_brain", "ssim_bone", "psnr_bone", "dice_bone"]
ROWS = ["CycleGAN", "Cycle-MedGAN", "Identity", "Look-up (best training slice)", "Target+blur", "Target+noise",
        "Target+blur+noise"]
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "lpips": False, "vif": True}


def head_ct(n: int, seed: int) -> np.ndarray:
    """(n, SIZE, SIZE) head-like CT phantoms in HU: smooth brain with dark blobs, bone ring, scalp, air."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    out = []
    for _ in range(n):
        cy, cx = SIZE / 2 + rng.uniform(-3, 3, 2)
        ry, rx = SIZE * rng.uniform(0.30, 0.36, 2)
        r = np.hypot((yy - cy) / ry, (xx - cx) / rx)
        brain = 30 + 48 * gaussian_filter(rng.standard_normal((SIZE, SIZE)), 3)
        for _ in range(3):
            by, bx = rng.uniform(-0.4, 0.4, 2) * [ry, rx] + [cy, cx]
            brain -= 25 * (np.hypot(yy - by, xx - bx) < rng.uniform(2, 5))
        img = np.select([r < 0.88, r < 1.0, r < 1.06], [brain, rng.uniform(900, 1500), 40.0], -1000.0)
        out.append(gaussian_filter(img, 0.6) + rng.normal(0, 4, img.shape))
    return np.stack(out).astype(np.float32)


def pet_from_ct(ct: np.ndarray) -> np.ndarray:
    """A PET-like input that depends on the CT slice: uptake in soft tissue, blurred."""
    uptake = np.where((ct > -500) & (ct < 500), 2.0 + (ct - 30.0) / 25.0, 0.1)
    return gaussian_filter(uptake, (0, 1.5, 1.5)).astype(np.float32)


def write_small_store(path) -> str:
    ct = head_ct(20, 1)
    train_ct, val_ct = ct[:8], ct[8:]
    return write_store(
        path, task=TASK, domain_a="PET", domain_b="CT", pixel_spacing_mm=4.0,
        train_a=pet_from_ct(head_ct(8, 2)), train_a_subjects=[f"a{i // 4}" for i in range(8)],
        train_b=train_ct, train_b_subjects=[f"b{i // 4}" for i in range(8)],
        val_a=pet_from_ct(val_ct), val_b=val_ct,
        val_subjects=[f"v{i // 4}" for i in range(12)], window_a=WINDOW_A, window_b=WINDOW_B)


def tiny_translator(weight: float, seed: int):
    """A 3x3 conv + tanh whose output depends on the input (different per fake model)."""
    import keras

    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Conv2D(1, 3, padding="same",
                                                                               activation="tanh")])
    kernel = np.random.default_rng(seed).normal(0, 0.05, (3, 3, 1, 1)).astype(np.float32)
    kernel[1, 1, 0, 0] += weight
    model.layers[-1].set_weights([kernel, np.zeros(1, np.float32)])
    return model


def manifest(model: str, **changes) -> dict:
    base = {"model": model, "task": TASK, "domain_a": "PET", "domain_b": "CT", "window_a": list(WINDOW_A),
            "window_b": list(WINDOW_B), "image_size": SIZE, "channels": 1}
    return dict(base, **changes)


def edit_manifest(src_run: str, dst_run: str, **changes) -> str:
    shutil.copytree(src_run, dst_run)
    path = os.path.join(dst_run, "export", "manifest.json")
    with open(path) as f:
        data = json.load(f)
    data.update(changes)
    with open(path, "w") as f:
        json.dump(data, f)
    return dst_run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from cycle_medgan_tf.export import export_translators

    root = tmp_path_factory.mktemp("evaluate")
    store = write_small_store(root / "small.h5")
    runs = {}
    for name, weight, seed in (("cyclegan", -1.2, 0), ("cycle_medgan", -2.0, 1)):
        for training_seed, suffix in ((0, ""), (1, "_seed1")):
            run_dir = str(root / f"{name}{suffix}")
            a2b = tiny_translator(weight - 0.1 * training_seed, seed + 10 * training_seed)
            export_translators(run_dir, {"a2b": a2b, "b2a": tiny_translator(-weight, seed)}, manifest(name))
            with open(os.path.join(run_dir, "config.json"), "w") as f:
                json.dump({"model": name, "seed": training_seed}, f)
            runs[f"{name}{suffix}"] = run_dir
    runs["other_task"] = edit_manifest(runs["cyclegan"], str(root / "other_task"), task="mr_motion")
    runs["other_size"] = edit_manifest(runs["cyclegan"], str(root / "other_size"), image_size=128)
    runs["mislabelled"] = edit_manifest(runs["cyclegan"], str(root / "mislabelled"), model="unit")
    runs["zscored"] = edit_manifest(runs["cyclegan"], str(root / "zscored"), normalisation_a={"method": "zscore"})
    return {"root": root, "store": str(store), "runs": runs}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "cycle_medgan_tf.evaluate", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def full_run(setup):
    out = setup["root"] / "out"
    runs = setup["runs"]
    result = run_cli(f"--data={setup['store']}", f"--runs=cyclegan={runs['cyclegan']}+{runs['cyclegan_seed1']},"
                     f"cycle_medgan={runs['cycle_medgan']}+{runs['cycle_medgan_seed1']}", f"--out={out}", "--identity",
                     "--lookup", "--degrade=blur,noise,blur+noise", "--batch_size=5")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "table1.json") as f:
        return {"out": out, "stdout": result.stdout, "json": json.load(f)}


def test_writes_every_output(full_run):
    out = full_run["out"]
    for folder in (out, out / "seeds" / "seed_0", out / "seeds" / "seed_1"):
        for name in ("table1.md", "table1.csv", "table1.tex", "table1.json", "fig3.png"):
            assert (folder / name).stat().st_size > 0, (folder, name)
    assert sorted(os.listdir(out / "seeds")) == ["seed_0", "seed_1"]
    assert "Slice-level paired tests" in (out / "details.md").read_text()
    assert not [p for p in os.listdir(out) if ".tmp" in p]
    with open(out / "fig3.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    width, height = Image.open(out / "fig3.png").size
    assert width > 900 and height > 800          # 3 subjects x 2 windows x (Input, 2 models, 4 references, Target)
    md = (out / "table1.md").read_text()
    assert "VIF (pixel domain) ↑ | MAE (HU) ↓ | ME (HU) →0 | SSIM brain ↑" in md and "LPIPS ↓" in md
    assert "standard deviation across seeds" in md and "Cycle-MedGAN minus each other row" in md
    assert "not significant" in md or "significant, " in md
    assert md.strip() in full_run["stdout"]
    csv_lines = (out / "table1.csv").read_text().strip().splitlines()
    assert csv_lines[0].startswith("task,split,model,n_slices,ssim_mean")
    assert "vif_ci95_hi,mae_hu_mean" in csv_lines[0]
    assert len(csv_lines) == 1 + len(ROWS)
    tex = (out / "table1.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\downarrow$" in tex and "Cycle-MedGAN" in tex and "Look-up" in tex


def test_json_schema(full_run):
    data = full_run["json"]
    assert set(data) == TOP_KEYS
    assert data["task"] == TASK and data["split"] == "val" and data["n_slices"] == 12
    assert data["columns"] == METRIC_KEYS + CT_KEYS and data["spread"] == "seeds"
    assert list(data["models"]) == ROWS
    assert data["seeds"]["CycleGAN"] == ["seed_0", "seed_1"] and data["seeds"]["Identity"] == ["reference"]
    for name, metrics in data["models"].items():
        assert list(metrics) == METRIC_KEYS + CT_KEYS
        for key, summary in metrics.items():
            assert {"mean", "std", "ci95", "seed_means"} <= set(summary)
            lo, hi = summary["ci95"]
            assert lo <= summary["mean"] <= hi, (name, key)
            assert (summary["std"] is None) == (name not in ("CycleGAN", "Cycle-MedGAN")), (name, key)
    for key in METRIC_KEYS:
        assert data["metric_conventions"][key]["higher_is_better"] == HIGHER_IS_BETTER[key]
    assert data["metric_conventions"]["vif"]["display"] == "VIF (pixel domain)"
    assert data["metric_conventions"]["me_hu"]["better"] == "zero" and "head_mask" in data["metric_conventions"]
    assert set(data["per_subject"]["Cycle-MedGAN"]) == {"v0", "v1", "v2"}
    assert data["per_subject"]["Identity"]["v1"]["n_slices"] == 4
    comparisons = data["comparisons"]
    assert len(comparisons) == (len(ROWS) - 1) * len(data["columns"])    # Cycle-MedGAN vs every other row
    for c in comparisons:
        assert c["a"] == "Cycle-MedGAN" and c["unit"] == "subject" and c["n_subjects"] == 3
        if c["ci95"] is not None:
            assert c["significant"] == (not c["ci95"][0] <= 0 <= c["ci95"][1])
    slice_tests = data["slice_tests"]["seed_1"]
    assert len(slice_tests) == (len(ROWS) - 1) * len(data["columns"]) and slice_tests[0]["unit"] == "slice"
    per_seed = json.loads((full_run["out"] / "seeds" / "seed_1" / "table1.json").read_text())
    assert per_seed["tests"] == slice_tests and list(per_seed["models"]) == ROWS


def test_headline_is_the_mean_over_the_per_seed_tables(full_run):
    seeds = [json.loads((full_run["out"] / "seeds" / f"seed_{k}" / "table1.json").read_text()) for k in (0, 1)]
    for name in ("CycleGAN", "Cycle-MedGAN", "Identity"):
        for key in ("ssim", "ssim_brain", "mae_hu"):
            per_seed = [s["models"][name][key]["mean"] for s in seeds]
            assert full_run["json"]["models"][name][key]["mean"] == pytest.approx(np.mean(per_seed), rel=1e-9)
    assert seeds[0]["models"]["Identity"] == seeds[1]["models"]["Identity"]        # references: seed-independent
    assert seeds[0]["models"]["CycleGAN"]["ssim"] != seeds[1]["models"]["CycleGAN"]["ssim"]


def test_lookup_row_beats_copying_the_input(full_run):
    models = full_run["json"]["models"]
    lookup = models["Look-up (best training slice)"]
    assert lookup["ssim"]["mean"] > models["Identity"]["ssim"]["mean"]
    assert lookup["mae_hu"]["mean"] < models["Identity"]["mae_hu"]["mean"]
    assert lookup["ssim"]["mean"] < 1.0                       # training slices are other subjects, not copies


def test_per_subject_means_match_slices(full_run):
    data = full_run["json"]
    subject_means = [v["ssim"] for v in data["per_subject"]["Cycle-MedGAN"].values()]
    # equal-sized subjects: mean of subject means = overall mean
    assert np.mean(subject_means) == pytest.approx(data["models"]["Cycle-MedGAN"]["ssim"]["mean"], rel=1e-9)


def test_more_degradation_is_worse_on_every_metric(full_run):
    models = full_run["json"]["models"]
    perfect = {"ssim": 1.0, "psnr": np.inf, "lpips": 0.0, "vif": 1.0}     # the target compared with itself
    for key in METRIC_KEYS:
        sign = 1.0 if HIGHER_IS_BETTER[key] else -1.0
        score = {name: sign * models[name][key]["mean"] for name in ("Target+blur", "Target+noise",
                                                                     "Target+blur+noise")}
        assert score["Target+blur+noise"] < score["Target+blur"], key
        assert score["Target+blur+noise"] < score["Target+noise"], key
        assert max(score.values()) < sign * perfect[key], key


def test_identity_row_is_the_input(full_run):
    # identity: the PET input compared with the CT target -> far from it; SSIM low, LPIPS high
    models = full_run["json"]["models"]
    assert models["Identity"]["ssim"]["mean"] < models["Target+blur"]["ssim"]["mean"]
    assert models["Identity"]["lpips"]["mean"] > models["Target+blur"]["lpips"]["mean"]


def test_existing_output_needs_overwrite(setup, full_run):
    args = [f"--data={setup['store']}", f"--out={full_run['out']}", "--identity"]
    before = (full_run["out"] / "table1.json").read_bytes()
    refused = run_cli(*args)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--overwrite" in refused.stderr
    assert (full_run["out"] / "table1.json").read_bytes() == before


def test_python_api_b2a_with_max_slices(setup):
    from cycle_medgan_tf.evaluate import evaluate

    out = setup["root"] / "api_b2a"
    data = evaluate(setup["store"], {"cycle_medgan": setup["runs"]["cycle_medgan"]}, out, direction="b2a",
                    max_slices=5, degrade=("noise",))
    assert data["n_slices"] == 5 and list(data["models"]) == ["Cycle-MedGAN", "Target+noise"]
    assert data["columns"] == METRIC_KEYS + ["ssim_mask", "psnr_mask"] and data["spread"] == "slices"
    assert data["metric_conventions"]["evaluation"]["reference"].startswith("val/A")
    assert os.path.isfile(out / "fig3.png") and os.path.isfile(out / "seeds" / "seed_0" / "table1.json")
    assert data["comparisons"][0]["b"] == "Target+noise"
    assert data["slice_tests"]["seed_0"][0]["b"] == "Target+noise"


def test_fewer_seeds_on_overwrite_remove_stale_seed_folders(setup):
    from cycle_medgan_tf.evaluate import evaluate

    out = setup["root"] / "api_seeds"
    runs = setup["runs"]
    evaluate(setup["store"], {"cyclegan": [runs["cyclegan"], runs["cyclegan_seed1"]]}, out, max_slices=4)
    assert sorted(os.listdir(out / "seeds")) == ["seed_0", "seed_1"]
    data = evaluate(setup["store"], {"cyclegan": [runs["cyclegan_seed1"]]}, out, max_slices=4, overwrite=True)
    assert os.listdir(out / "seeds") == ["seed_1"] and data["seeds"]["CycleGAN"] == ["seed_1"]


BAD_CASES = {
    "missing store": lambda s, o: [f"--data={s['root']}/absent.h5", f"--out={o}", "--identity"],
    "not a store": lambda s, o: [f"--data={s['runs']['cyclegan']}/export/manifest.json", f"--out={o}",
                                 "--identity"],
    "missing run": lambda s, o: [f"--data={s['store']}", f"--runs=unit={s['root']}/nope", f"--out={o}"],
    "other task": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['other_task']}", f"--out={o}"],
    "other size": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['other_size']}", f"--out={o}"],
    "wrong model": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['mislabelled']}", f"--out={o}"],
    "other normalisation": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['zscored']}",
                                         f"--out={o}"],
    "unknown model": lambda s, o: [f"--data={s['store']}", f"--runs=pix2pix={s['runs']['cyclegan']}",
                                   f"--out={o}"],
    "bad direction": lambda s, o: [f"--data={s['store']}", f"--out={o}", "--identity", "--direction=c2d"],
    "bad degradation": lambda s, o: [f"--data={s['store']}", f"--out={o}", "--degrade=blur,jpeg"],
    "nothing to do": lambda s, o: [f"--data={s['store']}", f"--out={o}"],
    "unknown flag": lambda s, o: [f"--data={s['store']}", f"--out={o}", "--identity", "--colour=red"],
    "bad integer": lambda s, o: [f"--data={s['store']}", f"--out={o}", "--identity", "--max_slices=many"],
    "no data flag": lambda s, o: [f"--out={o}", "--identity"],
    "run twice": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['cyclegan']}+"
                                                      f"{s['runs']['cyclegan']}", f"--out={o}"],
    "empty run": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['cyclegan']}+", f"--out={o}"],
    "bad seed run": lambda s, o: [f"--data={s['store']}", f"--runs=cyclegan={s['runs']['cyclegan']}+"
                                                         f"{s['runs']['other_size']}", f"--out={o}"],
}
EXPECTED_WORDS = {"missing store": "not found", "not a store": "not an HDF5", "missing run": "does not exist",
                  "other task": "task", "other size": "image size", "wrong model": "holds a 'unit'",
                  "other normalisation": "normalised by 'zscore'",
                  "unknown model": "pix2pix", "bad direction": "a2b or b2a", "bad degradation": "jpeg",
                  "nothing to do": "nothing to evaluate", "unknown flag": "colour", "bad integer": "max_slices",
                  "no data flag": "--data", "run twice": "given twice", "empty run": "NAME=RUN_DIR",
                  "bad seed run": "image size"}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_line(setup, case):
    out = setup["root"] / f"bad_{case.replace(' ', '_')}"
    result = run_cli(*BAD_CASES[case](setup, out))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert EXPECTED_WORDS[case] in lines[0]
    assert not os.path.exists(out / "table1.json")


# --- statistics ---

def test_bootstrap_is_deterministic_and_covers_the_mean():
    values = np.random.default_rng(0).normal(0.8, 0.05, 200)
    ci = stats.bootstrap_ci(values)
    assert ci == stats.bootstrap_ci(values)
    assert ci[0] < values.mean() < ci[1]
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (ci[1] - ci[0]) == pytest.approx(2 * half_width, rel=0.1)
    assert stats.bootstrap_ci([1.0]) is None


def test_summarize_leaves_out_non_finite_values():
    summary = stats.summarize([20.0, 30.0, np.inf])
    assert summary["mean"] == 25.0 and summary["n"] == 2
    assert stats.summarize([np.nan])["mean"] is None


def test_per_subject_means():
    means = stats.per_subject_means([1.0, 3.0, 10.0, np.nan], ["s2", "s2", "s1", "s1"])
    assert means == {"s1": 10.0, "s2": 2.0}


def test_wilcoxon_detects_a_shift_and_handles_degenerate_cases():
    rng = np.random.default_rng(1)
    b = rng.normal(0.8, 0.05, 40)
    shifted = stats.paired_wilcoxon(b + 0.02 + rng.normal(0, 0.005, 40), b)
    assert shifted["p_value"] < 1e-6 and shifted["mean_diff"] == pytest.approx(0.02, abs=0.005)
    same = stats.paired_wilcoxon(b, b.copy())
    assert same["p_value"] is None and "zero" in same["reason"] and same["mean_diff"] == 0.0
    few = stats.paired_wilcoxon(b[:4] + 0.01, b[:4])
    assert few["p_value"] is None and "non-zero" in few["reason"]
    noisy = stats.paired_wilcoxon(b + rng.normal(0, 0.05, 40), b)
    assert noisy["p_value"] > 0.01


def test_combined_markdown_for_two_tasks_with_paper_values(full_run):
    from cycle_medgan_tf.evaluation.table import paper_reference, render_markdown

    first = full_run["json"]
    second = dict(first, task="mr_motion")
    text = render_markdown([first, second], reference=paper_reference({"pet_ct": "PET->CT",
                                                                       "mr_motion": "MR motion"}))
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 2 * len(first["models"])
    assert "(paper 0.9115)" in text and "(paper 22.96)" in text            # Cycle-MedGAN SSIM, MR PSNR
    assert sum(line.startswith("| mr_motion |") for line in lines) == len(first["models"])
