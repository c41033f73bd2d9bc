"""What can the translators' generator learn in a budget when it is given pairs? A supervised ceiling.

    python -m cycle_medgan_tf.bench.paired_ceiling --pairs=STORE --data=STORE [--steps=600,2400] [--seed=0]
        [--precision=auto] [--figure=PNG [--overwrite] [--runs=NAME=RUN_DIR[+RUN_DIR][,...]]]

The ResNet-9 generator of CycleGAN and Cycle-MedGAN (``models/resnet_generator.py``) is trained alone, with an L1
loss, on the paired validation rows of ``--pairs`` (a store of the same task, other subjects than ``--data``'s),
with the quick recipe's optimiser and schedule (Adam 2e-4, beta1 0.5, batch 1, constant for the first half of the
steps, then a linear decay) and xhujoy's resize-crop-flip augmentation drawn alike for both images of a pair. Each
budget of ``--steps`` is a separate run from the same initialisation, scored on ``--data``'s validation rows like a
trained translator. CT targets: ``bench.brain_texture.texture`` (brain spread, interior, ``structure_corr``) and the
head's MAE in HU, bone Dice and brain PSNR (``evaluation.tissue``), after a line for the look-up row (the input-
blind case every figure must reject). Other targets (motion correction): Table I's SSIM and PSNR of the ceiling and
of Identity (the input copied) and their subject-level difference with its 95% bootstrap interval
(``evaluation.stats``). One JSON line per budget. ``--figure``: Fig. 3 of the scored slices (``evaluation.figure``;
CT with its brain-window row), one column per budget and, for CT, the look-up's, so a reader can see what the
network draws given pairs; ``--runs`` adds a column per trained run (its exported ``a2b`` translator), on the same
slices.

Pairs are what the unpaired models lack. If this ceiling draws the brain's soft tissue, or beats Identity, at a
budget where they do not, neither the budget nor the network is what stops them; if it does not either, nothing
trained for that many steps will. A diagnostic for issue 14's question, not a model of the project.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import flags

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("pairs", None, "Slice store whose paired validation rows train the generator.")
    flags.DEFINE_string("data", None, "Slice store of the same task and other subjects whose validation rows are "
                        "scored (PET -> CT: brain figures; otherwise SSIM/PSNR against Identity).")
    flags.DEFINE_list("steps", ["600", "2400"], "Training budgets (steps of batch 1); one run and line each.")
    flags.DEFINE_integer("seed", 0, "Initialisation and augmentation seed.", lower_bound=0)
    flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16"],
                      "Keras dtype policy; auto measures as training does (training/precision.py).")
    flags.DEFINE_string("figure", None, "PNG path: Fig. 3 of the scored slices, one column per budget.")
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --figure.")
    flags.DEFINE_string("runs", None, "NAME=RUN_DIR[+RUN_DIR][,...]: trained runs drawn beside the ceiling in "
                        "--figure (one column per run directory).")


def paired_batches(a: np.ndarray, b: np.ndarray, image_size: int, seed: int):
    """Endless ``(a, b)`` batches of one pair, (1, S, S, 1) each, the same crop and flip on both images."""
    import tensorflow as tf

    from cycle_medgan_tf.data.pipeline import augment_sample, shuffled_positions

    a, b = tf.constant(a, tf.float32), tf.constant(b, tf.float32)

    def load(position, index):
        return tuple(augment_sample(tf.gather(images, index), image_size, seed, position) for images in (a, b))

    return shuffled_positions(len(a), seed).map(load).batch(1).prefetch(2)


def train_ceiling(a: np.ndarray, b: np.ndarray, steps: int, seed: int):
    """The generator after ``steps`` L1 steps on the pairs ``a`` -> ``b`` ((N, S, S) in model range)."""
    import keras
    import tensorflow as tf

    from cycle_medgan_tf.config import resolve_config
    from cycle_medgan_tf.models.resnet_generator import build_resnet_generator
    from cycle_medgan_tf.training.optim import FusedAdam
    from cycle_medgan_tf.training.schedule import make_schedule

    recipe = resolve_config("cyclegan", "quick")        # the cycle models' optimiser and schedule
    keras.utils.set_random_seed(seed)
    generator = build_resnet_generator(a.shape[1])
    optimizer = FusedAdam(make_schedule(recipe.lr_schedule, recipe.lr, steps, recipe.decay_start),
                          beta_1=recipe.beta1, beta_2=recipe.beta2)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(generator(x, training=True) - y))
        optimizer.apply_gradients(zip(tape.gradient(loss, generator.trainable_variables),
                                      generator.trainable_variables))
        return loss

    for x, y in paired_batches(a, b, a.shape[1], seed).take(steps):
        step(x, y)
    return generator


def versus_identity(prediction: np.ndarray, target: np.ndarray, inputs: np.ndarray, subjects) -> dict:
    """Table I's SSIM and PSNR of ``prediction`` and of Identity (``inputs``), all (N, S, S) in model range, and
    the subject-level difference prediction - Identity with its 95% bootstrap interval."""
    from cycle_medgan_tf.evaluation.metrics import psnr, ssim
    from cycle_medgan_tf.evaluation.stats import bootstrap_difference, subject_matrix

    out = {}
    for name, metric in (("ssim", ssim), ("psnr", psnr)):
        run, identity = metric(target, prediction), metric(target, inputs)
        difference = bootstrap_difference(subject_matrix([run], subjects)[0], subject_matrix([identity], subjects)[0])
        out.update({name: round(float(np.mean(run)), 4), f"{name}_identity": round(float(np.mean(identity)), 4),
                    f"{name}_minus_identity": round(difference["diff"], 4),
                    f"{name}_minus_identity_ci95": [round(v, 4) for v in difference["ci95"]]})
    return out


def score(prediction_hu: np.ndarray, target_hu: np.ndarray, window_b) -> dict:
    """Brain texture figures, head MAE (HU) and bone Dice of CT predictions against their targets (N, S, S)."""
    from cycle_medgan_tf.bench.brain_texture import brain_mask, texture
    from cycle_medgan_tf.evaluation.tissue import tissue_metrics

    tissue = tissue_metrics(target_hu, prediction_hu, "CT", window_b)
    out = texture(prediction_hu, target_hu, brain_mask(target_hu, "CT", window_b))
    out.update({key: round(float(np.nanmean(tissue[key])), 4) for key in ("mae_hu", "dice_bone", "psnr_brain")})
    return out


def main(argv):
    del argv
    from cycle_medgan_tf.data.store import StoreError, from_model_range, open_store, to_model_range
    from cycle_medgan_tf.evaluation.runs import EvaluationError, check_run, parse_runs, translate

    try:
        budgets = sorted({int(s) for s in FLAGS.steps})
    except ValueError:
        fail(f"--steps must be whole numbers, got {','.join(FLAGS.steps)}")
    if not budgets or budgets[0] < 1:
        fail("--steps must be positive")
    if FLAGS.figure and os.path.exists(FLAGS.figure) and not FLAGS.overwrite:
        fail(f"--figure {FLAGS.figure} exists; pass --overwrite to replace it")
    if FLAGS.runs and not FLAGS.figure:
        fail("--runs only adds columns to --figure; give --figure too")
    try:
        with open_store(FLAGS.pairs) as pairs, open_store(FLAGS.data) as data:
            if pairs.task != data.task:
                fail(f"--pairs is a {pairs.task} store and --data a {data.task} store: they must be one task")
            if pairs.image_size != data.image_size or not (pairs.window_a.same_as(data.window_a)
                                                           and pairs.window_b.same_as(data.window_b)):
                fail("--pairs and --data differ in image size or in a domain's window")
            scored = {*data.val_subjects(), *data.train_subjects("A"), *data.train_subjects("B")}
            shared = set(map(str, pairs.val_subjects())) & set(map(str, scored))
            if shared:
                fail(f"--pairs' validation subjects are also in --data ({sorted(shared)[0]}, ...): the ceiling "
                     "must be trained on other subjects than those it is compared on")
            train_a = to_model_range(pairs.val_images("A")[()], pairs.window_a)
            train_b = to_model_range(pairs.val_images("B")[()], pairs.window_b)
            inputs = to_model_range(data.val_images("A")[()], data.window_a)
            target = data.val_images("B")[()]
            window_b, ct = data.window_b, data.domain_b == "CT"
            domains, window_a = (data.domain_a, data.domain_b), data.window_a
            subjects = [str(s) for s in data.val_subjects()]
            lookup_training = data.train_images("B")[()]
            runs = parse_runs(FLAGS.runs) if FLAGS.runs else {}
            for name, dirs in runs.items():
                for run_dir in dirs:
                    check_run(name, run_dir, "a2b", data)
    except (StoreError, EvaluationError, OSError) as exc:
        fail(str(exc))
    import keras
    import tensorflow as tf

    from cycle_medgan_tf.evaluation.lookup import lookup_prediction_in_units
    from cycle_medgan_tf.training.precision import choose_precision, time_probe

    precision, rule = FLAGS.precision, "requested"
    if precision == "auto":
        precision, rule = choose_precision(time_probe(), gpu=bool(tf.config.list_physical_devices("GPU")))
    keras.mixed_precision.set_global_policy(precision)
    columns = {}
    if ct:
        lookup = lookup_prediction_in_units(target, lookup_training, window_b)
        print(json.dumps(dict(run="lookup", **score(lookup, target, window_b))))
        columns["Look-up"] = to_model_range(lookup, window_b)
    for steps in budgets:
        start = time.perf_counter()
        generator = train_ceiling(train_a, train_b, steps, FLAGS.seed)
        fake = generator.predict(inputs[..., None], batch_size=16, verbose=0)[..., 0]
        figures = (score(from_model_range(fake, window_b), target, window_b) if ct else
                   versus_identity(fake, to_model_range(target, window_b), inputs, subjects))
        print(json.dumps(dict(run="paired_l1", steps=steps, seed=FLAGS.seed, pairs=len(train_a),
                              precision=precision, precision_rule=rule,
                              train_s=round(time.perf_counter() - start, 1), **figures)), flush=True)
        columns[f"paired L1 ({steps} steps)"] = fake
    for name, dirs in runs.items():
        for run_dir in dirs:
            try:
                columns[f"{name} ({os.path.basename(os.path.normpath(run_dir))})"] = translate(
                    name, run_dir, "a2b", inputs, 16)
            except EvaluationError as exc:
                fail(str(exc))
    if FLAGS.figure:
        write_figure(FLAGS.figure, inputs, to_model_range(target, window_b), columns, subjects, domains,
                     (window_a, window_b))


def write_figure(path: str, inputs: np.ndarray, target: np.ndarray, columns: dict, subjects, domains,
                 windows) -> None:
    """Fig. 3 of the scored slices (model range): Input | each column | Target, per-slice metrics under each."""
    from cycle_medgan_tf.evaluate import row_metrics
    from cycle_medgan_tf.evaluation.figure import render_fig3

    per_slice = {name: row_metrics(target, images, domains[1], windows[1]) for name, images in columns.items()}
    largest = [name for name in columns if name.startswith("paired L1")][-1]
    per_slice = {largest: per_slice.pop(largest), **per_slice}    # rows: the largest budget's median-SSIM slices
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    render_fig3(path, inputs=inputs, target=target, predictions=columns, per_slice=per_slice, subjects=subjects,
                source_domain=domains[0], target_domain=domains[1], source_window=windows[0],
                target_window=windows[1], title=f"paired L1 ceiling: {domains[0]} -> {domains[1]} (validation, "
                f"{len(subjects)} slices)")


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["pairs", "data"])
    run_app(main)
