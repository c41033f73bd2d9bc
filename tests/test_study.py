"""The fidelity study (``python -m cycle_medgan_tf.study``): its plan, store separation, resumable sittings with
one JSON per run, rendering from the JSONs alone, and the statistics and choice rule on synthetic records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.evaluation.report import table_keys
from cycle_medgan_tf.study.choice import choose
from cycle_medgan_tf.study.plan import (CHOICE_RULE, CHOICE_RULE_MR, PROTOCOL_WEIGHTS, RULE_METRICS, PlanError, Run,
                                        ablation_configs, default_weights, stage_runs)
from cycle_medgan_tf.study.records import (MAX_BYTES, RUN_FORMAT, VERSION, StudyError, encode_rows,
                                           existing_record, record_path, run_of, write_json)
from cycle_medgan_tf.study.render import render_study
from cycle_medgan_tf.study.runner import StudyOptions, run_study
from cycle_medgan_tf.study.stores import RunStores, check_separation, run_stores, held_out_store_path
from cycle_medgan_tf.study.summary import group_records
from tests.conftest import REPO

CT_COLUMNS = ["ssim", "psnr", "lpips", "vif", "mae_hu", "me_hu", "ssim_brain", "psnr_brain", "ssim_bone",
              "psnr_bone", "dice_bone"]


def _all_runs(task="pet_ct", seeds=(0, 1, 2), profile="quick"):
    return [run for stage in ("window", "ablation", "final")
            for run in stage_runs(task, stage, seeds, 600, profile, long_steps=2400)]


def test_run_ids_are_stable_readable_and_unique_and_round_trip():
    runs = _all_runs()
    ids = [r.run_id for r in runs]
    assert "pet_ct/ablation/cycle_medgan_cp0.6_cs0/seed_0_600" in ids
    assert "pet_ct/ablation/cycle_medgan_cp0_cs3/seed_2_600" in ids
    assert "pet_ct/window/cyclegan_soft_tissue/seed_1_600" in ids
    assert "pet_ct/final/cycle_medgan_cp1.8_cs1/seed_2_2400" in ids and "pet_ct/final/unit/seed_0_600" in ids
    assert "pet_ct/final/unit/seed_0_2400" not in ids            # the long budget: CycleGAN vs Cycle-MedGAN only
    # the window stage's linear CycleGAN is the ablation's run, listed once per stage and nowhere else twice
    window = stage_runs("pet_ct", "window", (0, 1, 2), 600, "quick")
    assert [r.run_id for r in window if r.data == "linear"] == [f"pet_ct/ablation/cyclegan/seed_{s}_600" for s in
                                                                range(3)]
    assert len(set(ids)) == len(ids) - 3
    assert ids == [r.run_id for r in _all_runs()]               # stable: the same plan gives the same ids
    assert stage_runs("mr_motion", "window", (0,), 600, "quick") == []
    for run in runs:
        assert run_of({"run": run.record()}) == run
        measured = run.stage == "final" and run.model != "unit"      # per-term gradient norms: final stage only
        assert run.overrides().get("gradient_every") == (run.steps // 8 if measured else None), run.run_id
    d = PROTOCOL_WEIGHTS
    configs = ablation_configs()
    assert len(configs) == 8 and configs[0] == ("cyclegan", ())
    cps = sorted(dict(s)["lambda_cp"] for m, s in configs[1:4])
    css = sorted(dict(s)["lambda_cs"] for m, s in configs[4:7])
    for weights, default in ((cps, d["lambda_cp"]), (css, d["lambda_cs"])):
        assert weights[0] < weights[1] == pytest.approx(default, rel=0.02) and weights[1] < weights[2]
        assert 8 <= weights[2] / weights[0] <= 11                # about three weights spanning 10x
    assert dict(configs[7][1]) == d and "bone Dice" in CHOICE_RULE
    doc = " ".join(open(os.path.join(REPO, "docs", "FIDELITY.md")).read().replace("\n> ", " ").split())
    assert CHOICE_RULE in doc and CHOICE_RULE_MR in doc          # the rule, verbatim in the protocol
    for task, domain in (("pet_ct", "CT"), ("mr_motion", "MR")):     # the rule names metrics the evaluation makes
        assert set(RULE_METRICS[task]) <= set(table_keys(domain)) and RULE_METRICS[task][-1] == "ssim"


def test_tuning_stages_never_use_the_test_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLE_MEDGAN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(PlanError, match="nothing is chosen on the test store"):
        Run("pet_ct", "ablation", "test", "linear", "cyclegan", 0, 600, "quick")
    tests = {held_out_store_path("pet_ct", data, "quick") for data in ("linear", "soft_tissue")}
    tuning = [r for r in _all_runs() if r.stage in ("window", "ablation")]
    assert tuning and all(r.store == "tuning" for r in tuning)
    for run in tuning:
        stores = run_stores(run, create=False)
        assert stores.data not in tests and stores.curves not in tests and stores.data != stores.curves
    final = [r for r in _all_runs() if r.stage == "final"]
    assert all(run_stores(r, create=False).data == held_out_store_path("pet_ct", "linear", "quick") for r in final)
    with pytest.raises(PlanError, match="is a test store"):
        check_separation(tuning[0], RunStores(data=held_out_store_path("pet_ct", "linear", "quick"), curves="x.h5"))
    assert not os.path.exists(tmp_path / "cache")              # nothing generated by planning


# ---- synthetic records: statistics, rendering and the choice rule without any training ----

SUBJECTS, SLICES = 8, 12


def _fake_values(effects: dict, rng) -> dict:
    """Per-slice values: a fixed subject baseline (the same subjects in every run) + a seed offset + slice noise +
    ``effects[metric]`` (the configuration's true effect)."""
    base = np.random.default_rng(7).normal(0.5, 0.05, SUBJECTS).repeat(SLICES)
    return {k: base + effects.get(k, 0.0) + rng.normal(0, 0.003) + rng.normal(0, 0.02, len(base))
            for k in CT_COLUMNS}


def _fake_record(run: Run, metrics: dict) -> dict:
    ids = [f"sub{j:02d}" for j in range(SUBJECTS) for _ in range(SLICES)]
    curves = [{"step": s, "a2b_ssim": float(0.3 + s / 100 + np.mean(metrics["ssim"]))} for s in (5, 10)]
    return {"format": RUN_FORMAT, "version": VERSION, "run": run.record(), "subjects": ids,
            "evaluation": {"columns": CT_COLUMNS}, "metrics": encode_rows(metrics), "curves": curves,
            "provenance": {"step_s_median": 1.0, "evaluate_s": 3.0}, "final_losses": {"cycle": 1.0}}


def _shuffled_within_subjects(values: np.ndarray, rng) -> np.ndarray:
    return np.concatenate([rng.permutation(part) for part in values.reshape(SUBJECTS, SLICES)])


def _write_ablation(results, effect_of, null_label=None) -> None:
    """The 24 ablation records; ``null_label``'s configuration gets CycleGAN's values with the seeds relabelled
    and the slices shuffled within each subject: no effect at all, only the seed resampling differs."""
    rng = np.random.default_rng(3)
    runs = stage_runs("pet_ct", "ablation", (0, 1, 2), 10, "quick")
    cyclegan = {r.seed: _fake_values({}, rng) for r in runs if r.model == "cyclegan"}
    for run in runs:
        if run.label == null_label:
            metrics = {k: _shuffled_within_subjects(v, rng) for k, v in cyclegan[(run.seed + 1) % 3].items()}
        else:
            metrics = cyclegan[run.seed] if run.model == "cyclegan" else _fake_values(effect_of(run), rng)
        write_json(record_path(results, run), _fake_record(run, metrics))


def _row_cells(markdown: str, section: str, label: str) -> list[str]:
    part = markdown.split(section, 1)[1]
    line = next(line for line in part.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_rendering_finds_a_known_effect_and_calls_no_effect_not_significant(tmp_path):
    results, out = str(tmp_path / "studies"), str(tmp_path / "rendered")
    effect = "cycle_medgan_cp5.4_cs0"
    _write_ablation(results, lambda run: {k: 0.1 for k in CT_COLUMNS} if run.label == effect else {},
                    null_label="cycle_medgan_cp0_cs1")
    sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(results) for f in fs]
    assert len(sizes) == 24 and max(sizes) < MAX_BYTES            # 96 slices x 11 metrics per run fit the limit
    written = render_study(results, out)
    assert {os.path.basename(p) for p in written} == {"pet_ct_ablation.md", "pet_ct_ablation_curves.png",
                                                      "choice.json"}
    markdown = open(os.path.join(out, "pet_ct_ablation.md")).read()
    differences = "### Differences against CycleGAN"
    known = _row_cells(markdown, differences, effect)
    assert known[1] == "cyclegan" and all(c.startswith(("+0.1", "+0.09")) for c in known[2:6])
    assert not any("not significant" in c for c in known[2:])     # every metric moved by +0.1
    null = _row_cells(markdown, differences, "cycle_medgan_cp0_cs1")
    assert all(c.endswith("not significant") for c in null[2:]), null
    means = _row_cells(markdown, "## 10 steps", "cyclegan")
    assert means[1] == "0,1,2" and "[" in means[2]               # mean [95% interval]
    assert "| cyclegan | std |" in markdown and "Differences against Identity" not in markdown   # PET is no CT
    choice = json.load(open(os.path.join(out, "choice.json")))["pet_ct"]
    assert choice["complete"] and choice["helped"] and choice["chosen_label"] == effect
    assert choice["chosen"] == {"lambda_cp": 5.4, "lambda_cs": 0.0} and choice["rule"] == CHOICE_RULE
    assert choice["mean_rank"][effect] == 1.0


MR_COLUMNS = ["ssim", "psnr", "lpips", "vif", "ssim_mask", "psnr_mask"]


def test_motion_correction_is_compared_with_doing_nothing(tmp_path):
    """mr_motion's tables compare every configuration with Identity (the corrupted input copied): a model worse
    than the input is significantly negative, one indistinguishable from it is "not significant", a better one
    positive; pet_ct, whose input is PET, has no such table."""
    from cycle_medgan_tf.study.records import REFERENCE_FORMAT, reference_path

    results, out = str(tmp_path / "studies"), str(tmp_path / "rendered")
    rng = np.random.default_rng(5)
    ids = [f"sub{j:02d}" for j in range(SUBJECTS) for _ in range(SLICES)]
    fake = _fake_values({}, rng)
    identity = {k: fake.get(k, fake["ssim_brain"]) for k in MR_COLUMNS}
    write_json(reference_path(results, "mr_motion", "tuning", "linear"),
               {"format": REFERENCE_FORMAT, "version": VERSION, "task": "mr_motion", "store": "tuning",
                "data": "linear", "subjects": ids, "columns": MR_COLUMNS, "rows": {"Identity": encode_rows(identity)}})
    effects = {"cyclegan": -0.1, "cycle_medgan_cp1.8_cs0": 0.1}        # worse and better than the copied input
    for run in stage_runs("mr_motion", "ablation", (0, 1, 2), 10, "quick"):
        if run.label in effects:
            metrics = {k: v + effects[run.label] + rng.normal(0, 0.003) + rng.normal(0, 0.02, len(v))
                       for k, v in identity.items()}
        else:                                                           # the input copied, slices shuffled
            metrics = {k: _shuffled_within_subjects(v, rng) for k, v in identity.items()}
        record = _fake_record(run, metrics)
        record["evaluation"]["columns"] = MR_COLUMNS
        write_json(record_path(results, run), record)
    render_study(results, out)
    markdown = open(os.path.join(out, "mr_motion_ablation.md")).read()
    section = "### Differences against Identity"
    worse = _row_cells(markdown, section, "cyclegan")
    assert worse[1] == "Identity" and all(c.startswith("-0.1") or c.startswith("-0.09") for c in worse[2:])
    assert not any("not significant" in c for c in worse[2:]), worse
    better = _row_cells(markdown, section, "cycle_medgan_cp1.8_cs0")
    assert all(c.startswith(("+0.1", "+0.09")) and "not significant" not in c for c in better[2:]), better
    copied = _row_cells(markdown, section, "cycle_medgan_cp0_cs1")
    assert all(c.endswith("not significant") for c in copied[2:]), copied
    assert "Identity (input copied) | – |" in markdown                 # the value row stays in the means table


def test_motion_correction_curves_draw_identity_on_the_same_slices(tmp_path, monkeypatch):
    """Identity's learning-curve scores (the input copied, on the run's curve slices) are added to the store's
    reference JSON by a real executor, from the real curve store, and drawn as a dashed line on mr_motion's curves
    (never on pet_ct's, where the input is PET)."""
    from cycle_medgan_tf.study import render as render_module
    from cycle_medgan_tf.study.execute import Executor
    from cycle_medgan_tf.study.plots import IDENTITY_LABEL, stage_figure
    from cycle_medgan_tf.study.records import REFERENCE_FORMAT, reference_path
    from cycle_medgan_tf.study.stores import image_size
    from cycle_medgan_tf.training.curves import identity_scores

    monkeypatch.setenv("CYCLE_MEDGAN_CACHE", str(tmp_path / "cache"))
    results = str(tmp_path / "studies")
    run = stage_runs("mr_motion", "ablation", (0,), 2, "smoke")[0]
    path = reference_path(results, "mr_motion", "tuning", "linear")
    ids = [f"sub{j:02d}" for j in range(SUBJECTS) for _ in range(SLICES)]
    values = encode_rows({k: np.full(len(ids), 0.5) for k in MR_COLUMNS})
    write_json(path, {"format": REFERENCE_FORMAT, "version": VERSION, "task": "mr_motion", "store": "tuning",
                      "data": "linear", "subjects": ids, "columns": MR_COLUMNS, "rows": {"Identity": values}})
    executor = Executor(str(tmp_path / "work"), results, log=lambda m: None)
    executor.complete_reference(run)
    added = json.load(open(path))["curve_identity"]
    curves_store = run_stores(run).curves
    assert added["curve_store_seed"] == 2 and added["curve_store"] == os.path.basename(curves_store)
    direct = identity_scores(curves_store, added["slices"], image_size("smoke"))
    assert added["scores"]["a2b_ssim"] == pytest.approx(direct["a2b_ssim"], abs=1e-6)
    assert 0 < added["scores"]["a2b_ssim"] < 1
    executor.complete_reference(stage_runs("pet_ct", "ablation", (0,), 2, "smoke")[0])    # no pet_ct reference
    assert not os.path.exists(reference_path(results, "pet_ct", "tuning", "linear"))

    for run_ in stage_runs("mr_motion", "ablation", (0,), 2, "smoke"):
        record = _fake_record(run_, {k: np.full(len(ids), 0.4) for k in MR_COLUMNS})
        record["evaluation"]["columns"] = MR_COLUMNS
        record["curves"] = [{"step": 1, "a2b_ssim": 0.3, "a2b_ssim_mask": 0.2},
                            {"step": 2, "a2b_ssim": 0.35, "a2b_ssim_mask": 0.25}]
        write_json(record_path(results, run_), record)
    drawn = {}

    def spy(path_, task, stage, configs, identity=None):
        drawn[task, stage] = identity
        figure = stage_figure(task, stage, configs, identity)
        lines = [line for ax in figure.axes for line in ax.get_lines() if line.get_label() == IDENTITY_LABEL]
        drawn[task, stage, "lines"] = [float(line.get_ydata()[0]) for line in lines]
        return True

    monkeypatch.setattr(render_module, "render_stage_curves", spy)
    render_study(results, str(tmp_path / "rendered"))
    scores = added["scores"]
    assert drawn["mr_motion", "ablation"] == scores
    assert drawn["mr_motion", "ablation", "lines"] == pytest.approx([scores["a2b_ssim"], scores["a2b_ssim_mask"]])


def test_renders_into_one_folder_wait_for_each_other(tmp_path):
    """Two studies (e.g. one per task, each on its own core) render into the same folder: a render waits for one
    in progress, then reads the JSONs as they are then."""
    import threading
    import time

    from cycle_medgan_tf.study.render import _render_lock

    results = str(tmp_path / "studies")
    _write_ablation(results, lambda run: {})
    choice = os.path.join(results, "choice.json")
    start = time.monotonic()
    render_study(results, results)
    alone = time.monotonic() - start
    os.remove(choice)
    with _render_lock(results):
        render = threading.Thread(target=render_study, args=(results, results))
        render.start()
        render.join(2 * alone + 1.0)                                 # long enough to have finished unlocked
        assert render.is_alive() and not os.path.exists(choice)
    render.join(60 + 2 * alone)
    assert not render.is_alive() and os.path.exists(choice)


def _gradient_records(shares: dict, steps=(300, 600)) -> list[dict]:
    """Gradient-norm records with the given share of each term (norms: share x 10)."""
    return [dict(kind="gradients", step=s, **{f"grad_norm_{t}": 10 * v for t, v in shares.items()},
                 **{f"grad_share_{t}": v for t, v in shares.items()}) for s in steps]


def test_the_gradient_share_of_each_term_is_tabulated_and_drawn(tmp_path):
    results, out = str(tmp_path / "studies"), str(tmp_path / "rendered")
    rng = np.random.default_rng(1)
    shares = {0: {"adversarial": 0.5, "cycle": 0.3, "cycle_perceptual": 0.1, "cycle_style": 0.1},
              1: {"adversarial": 0.3, "cycle": 0.3, "cycle_perceptual": 0.3, "cycle_style": 0.1}}
    for run in stage_runs("pet_ct", "final", (0, 1), 600, "quick", long_steps=2400):
        record = _fake_record(run, _fake_values({}, rng))
        if run.model == "cycle_medgan" and run.steps == 600:
            record["gradients"] = _gradient_records(shares[run.seed])
        elif run.model == "cyclegan" and run.steps == 600:
            record["gradients"] = _gradient_records({"adversarial": 0.25, "cycle": 0.75})
        write_json(record_path(results, run), record)
    written = {os.path.basename(p) for p in render_study(results, out)}
    assert "pet_ct_final_gradients.png" in written
    markdown = open(os.path.join(out, "pet_ct_final.md")).read()
    section = markdown.split("### Generator-gradient share of each loss term", 1)[1]
    assert markdown.count("### Generator-gradient share of each loss term") == 1      # the 2,400-step runs have none
    label = next(r.label for r in stage_runs("pet_ct", "final", (0,), 600, "quick") if r.model == "cycle_medgan")
    medgan = section.split(f"{label}, 600 steps (2 seeds):", 1)[1]
    assert "| term | step 300 | step 600 | median norm |" in medgan
    assert "| adversarial | 0.40 [0.30, 0.50] | 0.40 [0.30, 0.50] | 4 |" in medgan
    assert "| cycle_perceptual | 0.20 [0.10, 0.30] | 0.20 [0.10, 0.30] | 2 |" in medgan
    assert "| cycle | 0.75 [0.75, 0.75] | 0.75 [0.75, 0.75] | 7.5 |" in section.split("cyclegan, 600 steps", 1)[1]


def test_records_of_one_task_at_two_precisions_are_refused(tmp_path):
    results = str(tmp_path / "studies")
    _write_ablation(results, lambda run: {})
    records = [dict(json.load(open(os.path.join(d, f))), config={"precision": "float32"})
               for d, _, fs in os.walk(results) for f in fs]
    assert len(group_records(records)) == 8
    records[5]["config"] = {"precision": "mixed_bfloat16"}
    with pytest.raises(ValueError, match="trained in mixed_bfloat16, .* in float32: the runs of one task"):
        group_records(records)


def test_two_processes_share_the_plan_and_the_final_stage_waits_for_the_ablation(tmp_path):
    """A run claimed by another study process is left to it; while an ablation run is still being trained, the
    final stage trains UNIT and CycleGAN but not Cycle-MedGAN, whose weights are the ablation's choice."""
    from cycle_medgan_tf.study.runner import claim

    results, workdir = str(tmp_path / "studies"), str(tmp_path / "work")
    _write_ablation(results, lambda run: {})
    held = stage_runs("pet_ct", "ablation", (0, 1, 2), 10, "quick")[-1]
    os.remove(record_path(results, held))
    options = StudyOptions("pet_ct", ("ablation", "final"), (0, 1, 2), 10, 40, "quick", results, workdir)
    rng, trained = np.random.default_rng(5), []

    def execute(run):
        trained.append(run)
        return _fake_record(run, _fake_values({}, rng))

    with claim(workdir, held) as mine:                  # "another process": a second open file of the same lock
        assert mine
        alone = run_study(StudyOptions(**dict(options.__dict__, stages=("final",))), execute, log=lambda m: None)
        assert {r.model for r in trained} == {"unit", "cyclegan"} and len(trained) == 9
        assert len(alone["remaining"]) == 6 and not alone["busy"]   # the final stage alone waits for it too
        shutil.rmtree(os.path.join(results, "pet_ct", "final"))
        trained.clear()
        first = run_study(options, execute, log=lambda m: None)
    assert first["busy"] == [held.run_id] and held not in trained
    assert {r.model for r in trained} == {"unit", "cyclegan"} and len(trained) == 9
    assert len(first["remaining"]) == 6 and all("/cycle_medgan" in r for r in first["remaining"])
    second = run_study(options, execute, log=lambda m: None)
    assert second["trained"][0] == held.run_id and not second["busy"] and not second["remaining"]
    assert [r.model for r in trained[9:]] == ["cycle_medgan"] * 7


def test_the_time_estimate_uses_step_times_of_the_same_profile_only(tmp_path):
    from cycle_medgan_tf.study.runner import describe_plan

    results = str(tmp_path / "studies")
    _write_ablation(results, lambda run: {})            # quick-profile records: 1.0 s/step, 3 s of evaluation
    options = StudyOptions("pet_ct", ("final",), (0, 1, 2), 600, 2400, "quick", results, str(tmp_path / "w"))
    quick = describe_plan(options)
    # 6 CycleGAN-model runs at 600 steps, 6 at 2,400, 15 evaluations; UNIT has no timing yet
    assert "about 5.0 h from the step times of the existing quick records (no timing yet for unit)" in quick, quick
    paper = describe_plan(StudyOptions(**dict(options.__dict__, profile="paper", steps=1500, long_steps=6000)))
    assert "no estimate from the step times of the existing paper records" in paper, paper


def test_the_rule_keeps_the_defaults_when_no_loss_beats_cyclegan(tmp_path, monkeypatch):
    results = str(tmp_path / "studies")
    _write_ablation(results, lambda run: {} if run.model == "cyclegan" else {k: -0.05 for k in CT_COLUMNS})
    configs = group_records([json.load(open(os.path.join(d, f))) for d, _, fs in os.walk(results) for f in fs])
    choice = choose("pet_ct", configs, seeds=(0, 1, 2))
    assert choice["complete"] and choice["helped"] is False and choice["chosen"] == default_weights()
    assert "did not help on the tuning store" in choice["verdict"]
    # the kept weights are the protocol's, whatever the family defaults are changed to later
    family = catalogue.family("cycle_medgan")
    monkeypatch.setitem(family.defaults, "lambda_cp", 0.5)
    assert default_weights() != PROTOCOL_WEIGHTS
    assert choose("pet_ct", configs, seeds=(0, 1, 2))["chosen"] == PROTOCOL_WEIGHTS
    monkeypatch.undo()
    partial = choose("pet_ct", configs, seeds=(0, 1, 2, 3))
    assert not partial["complete"] and len(partial["missing"]) == 8
    # from the JSONs alone (no plan): each run missing against the protocol's seeds and any seen, one by one
    records = [json.load(open(os.path.join(d, f))) for d, _, fs in os.walk(results) for f in fs]
    label = lambda r: run_of(r).label
    thinned = [r for r in records if label(r) != "cycle_medgan_cp0_cs3"
               and not (label(r) == "cycle_medgan_cp0_cs1" and r["run"]["seed"] == 2)]
    rendered = choose("pet_ct", group_records(thinned))
    assert sorted(rendered["missing"]) == sorted(["cycle_medgan_cp0_cs3 seed 0", "cycle_medgan_cp0_cs3 seed 1",
                                                  "cycle_medgan_cp0_cs3 seed 2", "cycle_medgan_cp0_cs1 seed 2"])
    assert "(4 runs missing)" in rendered["verdict"]
    first_seed = choose("pet_ct", group_records([r for r in records if r["run"]["seed"] == 0]))
    assert len(first_seed["missing"]) == 16 and not first_seed["complete"]   # against the protocol's 3 seeds


def test_validation_metrics_are_the_evaluation_s_per_slice_values(tmp_path):
    """The study's per-run metrics (``evaluate.validation_metrics``) are the values Table I is made of."""
    from cycle_medgan_tf.evaluate import evaluate, validation_metrics
    from cycle_medgan_tf.export import export_translators
    from tests.test_evaluate import manifest, tiny_translator, write_small_store

    store = write_small_store(tmp_path / "small.h5")
    run = str(tmp_path / "run")
    export_translators(run, {"a2b": tiny_translator(-1.2, 0), "b2a": tiny_translator(1.2, 0)}, manifest("cyclegan"))
    values = validation_metrics(store, {"cyclegan": run}, identity=True)
    table = evaluate(store, {"cyclegan": run}, tmp_path / "out", identity=True)
    assert values["columns"] == table["columns"] and len(values["subjects"]) == table["n_slices"] == 12
    assert not os.path.exists(tmp_path / "run" / "table1.json")
    for row, name in (("cyclegan", "CycleGAN"), ("Identity", "Identity")):
        for key in values["columns"]:
            assert np.nanmean(values["rows"][row][key]) == pytest.approx(table["models"][name][key]["mean"])
    assert values["rows"]["cyclegan"]["ssim"].tolist() != values["rows"]["Identity"]["ssim"].tolist()


# ---- a real tiny study: trainings, reuse, continuation, render-only, refusal ----

def _cli(tmp_path, *args):
    env = dict(os.environ, CYCLE_MEDGAN_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "cycle_medgan_tf.study", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)


def test_a_tiny_study_records_reuses_continues_renders_and_refuses(tmp_path, monkeypatch):
    from cycle_medgan_tf.study.execute import Executor, run_dir

    monkeypatch.setenv("CYCLE_MEDGAN_CACHE", str(tmp_path / "cache"))
    results, workdir = str(tmp_path / "studies"), str(tmp_path / "work")
    options = StudyOptions("pet_ct", ("window",), (0,), 2, 8, "smoke", results, workdir, max_runs=1)
    trained = []
    executor = Executor(workdir, results, log=lambda m: None)
    baseline = stage_runs("pet_ct", "window", (0,), 2, "smoke")[0]      # the ablation's CycleGAN run

    def execute(run):
        trained.append(run.run_id)
        return executor(run)

    first = run_study(options, execute, log=lambda m: None, recorded=executor.recorded)   # a sitting of one run
    assert first["trained"] == trained == ["pet_ct/ablation/cyclegan/seed_0_2"] and len(first["remaining"]) == 1
    first_dir = run_dir(workdir, baseline)                         # recorded: checkpoints freed, export kept
    assert not os.path.exists(os.path.join(first_dir, "checkpoints")) and os.listdir(os.path.join(first_dir, "export"))
    record = json.load(open(record_path(results, baseline)))
    assert record["run"]["store"] == "tuning" and "_seed1_" in record["config"]["data"]
    assert "_seed2_" in record["config"]["curve_data"] and record["evaluation"]["split"].startswith("val")
    assert len(record["subjects"]) == record["evaluation"]["n_slices"] == len(record["metrics"]["ssim_brain"])
    assert [c["step"] for c in record["curves"]] == [2] and "cycle" in record["final_losses"]
    assert record["provenance"]["cpu"] and record["provenance"]["step_s_median"] > 0
    assert record["config"]["precision"] == "float32"             # never auto: a study spans machines
    assert not os.path.exists(held_out_store_path("pet_ct", "linear", "smoke"))   # the test store was never made

    keeping = Executor(workdir, results, log=lambda m: None, keep_checkpoints=True)
    second = run_study(StudyOptions(**dict(options.__dict__, max_runs=None)), execute, log=lambda m: None,
                       recorded=keeping.recorded)
    assert second["trained"] == ["pet_ct/window/cyclegan_soft_tissue/seed_0_2"] and len(trained) == 2
    second_run = stage_runs("pet_ct", "window", (0,), 2, "smoke")[1]
    assert second_run.run_id == second["trained"][0]
    assert os.listdir(os.path.join(run_dir(workdir, second_run), "checkpoints"))
    assert not os.path.exists(held_out_store_path("pet_ct", "soft_tissue", "smoke"))

    shutil.rmtree(workdir)                                         # a new machine: the JSONs alone
    third = run_study(StudyOptions(**dict(options.__dict__, max_runs=None)), execute, log=lambda m: None)
    assert third["trained"] == [] and len(third["reused"]) == 2 and len(trained) == 2 and not os.path.exists(workdir)

    out = tmp_path / "rendered"
    code = ("import sys; from cycle_medgan_tf.study.render import render_study; "
            f"render_study({results!r}, {str(out)!r}); assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    rendered = _cli(tmp_path, "--render_only", f"--results={results}", f"--out={out / 'again'}")
    assert rendered.returncode == 0, rendered.stderr
    for folder in (out, out / "again"):
        window = (folder / "pet_ct_window.md").read_text()
        assert "| cyclegan_soft_tissue | cyclegan |" in window and (folder / "pet_ct_window_curves.png").is_file()

    flags = ["--stage=window", "--seeds=0", "--steps=2", "--profile=smoke", f"--results={results}",
             f"--workdir={workdir}"]
    dry = _cli(tmp_path, "--dry_run", *flags)
    assert dry.returncode == 0 and "done  pet_ct/window/cyclegan_soft_tissue/seed_0_2" in dry.stdout
    path = record_path(results, baseline)
    edited = dict(record, run=dict(record["run"], profile="quick"))
    write_json(path, edited)
    refused = _cli(tmp_path, *flags)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "holds another run than the plan's (profile 'quick' != planned 'smoke')" in refused.stderr
    assert existing_record(results, baseline, overwrite=True) is None
    with pytest.raises(StudyError, match="use --overwrite"):
        existing_record(results, baseline, overwrite=False)
