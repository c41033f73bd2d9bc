"""Does a reduced-precision policy hold up? ``python -m cycle_medgan_tf.bench.precision --model=cyclegan --steps=200
--size=64 --precisions=float32,mixed_bfloat16 --out=DIR`` trains the same run (same data, seed and batches) once per
precision with the real training loop, then prints one JSON line per precision and a final comparison line:

* ``sec_per_step_median`` (from ``metrics.jsonl``, first logging window excluded: it holds the tracing);
* ``final_losses``: each loss averaged over the last ``--final_window`` steps;
* ``val_ssim`` / ``val_psnr``: the exported A->B translator on the validation slices of the store;
* in the comparison line, the speed-up over the first precision and each loss's relative difference.

Run directories go under ``--out`` (refused if present, unless ``--overwrite``).
"""

from __future__ import annotations

import json
import os
import statistics

from absl import flags

from cycle_medgan_tf.cli import fail, run_app
from cycle_medgan_tf.config import MODELS, PRECISIONS

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a command, so that importing this module is free)."""
    flags.DEFINE_enum("model", "cyclegan", list(MODELS), "Model to train.")
    flags.DEFINE_string("data", "", "Store to train on ('' = the default pet_ct data at --size, generated if needed).")
    flags.DEFINE_integer("size", 64, "Image side.")
    flags.DEFINE_integer("steps", 200, "Training steps per precision.")
    flags.DEFINE_integer("final_window", 50, "Steps whose mean losses are compared.")
    flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Policies to compare; the first is the reference.")
    flags.DEFINE_string("out", "runs/bench_precision", "Parent directory of the run directories.")
    flags.DEFINE_bool("overwrite", False, "Replace existing run directories under --out.")
    flags.DEFINE_integer("val_slices", 64, "Validation slices scored.")
    flags.DEFINE_integer("noise_seed", -1, "If >= 0, also train the first precision with this seed: how far two "
                         "runs that differ only in their seed end apart is the yardstick for the precisions' gap.")


def step_records(metrics_path: str) -> list[dict]:
    """The training-step records of ``metrics.jsonl`` (its learning-curve lines, ``"kind": "curve"``, left out)."""
    with open(metrics_path) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if "kind" not in r]


def _final_losses(metrics_path: str, window: int, total: int) -> tuple[dict, float]:
    """Each loss averaged over the records of the last ``window`` steps, and the median ``sec_per_step`` of all
    records but the first (it holds the tracing)."""
    records = step_records(metrics_path)
    tail = [r for r in records if r["step"] > total - window]
    skip = {"step", "time_s", "sec_per_step", "lr", "skipped_steps"}
    keys = [k for k in tail[-1] if k not in skip]
    losses = {k: statistics.fmean(r[k] for r in tail) for k in keys}
    speeds = [r["sec_per_step"] for r in records[1:]] or [records[0]["sec_per_step"]]
    return losses, statistics.median(speeds)


def run_precision(precision: str, data: str, workdir: str, seed: int = 0) -> dict:
    """Train ``FLAGS.model`` under ``precision`` into ``workdir``; return its speed, final losses and scores."""
    from cycle_medgan_tf.config import resolve_config
    from cycle_medgan_tf.data.pipeline import val_arrays
    from cycle_medgan_tf.evaluation.metrics import psnr, ssim
    from cycle_medgan_tf.export import load_translator
    from cycle_medgan_tf.catalogue import trainer_class
    from cycle_medgan_tf.training.trainer import run_training

    log_every = max(FLAGS.steps // 20, 1)
    cfg = resolve_config(FLAGS.model, "quick", dict(
        data=data, workdir=workdir, image_size=FLAGS.size, steps=FLAGS.steps, precision=precision,
        log_every=log_every, image_every=FLAGS.steps, checkpoint_every=FLAGS.steps, keep_checkpoints=1, seed=seed))
    run_training(trainer_class(FLAGS.model), cfg, overwrite=FLAGS.overwrite, log=lambda m: None)
    losses, sec = _final_losses(os.path.join(workdir, "metrics.jsonl"), FLAGS.final_window, FLAGS.steps)
    a, b, _ = val_arrays(data, FLAGS.size, FLAGS.val_slices)
    fake_b = load_translator(workdir, "a2b")(a)[..., 0]
    b = b[..., 0]
    return dict(precision=precision, seed=seed, model=FLAGS.model, size=FLAGS.size, steps=FLAGS.steps,
                sec_per_step_median=round(sec, 4), final_losses={k: round(v, 5) for k, v in losses.items()},
                val_ssim=round(float(ssim(b, fake_b).mean()), 4), val_psnr=round(float(psnr(b, fake_b).mean()), 3))


def main(argv):
    del argv
    if FLAGS.steps < 2 or not 1 <= FLAGS.final_window <= FLAGS.steps:
        fail("--steps >= 2 and 1 <= --final_window <= --steps are required")
    for p in FLAGS.precisions:
        if p not in PRECISIONS:
            fail(f"unknown precision {p!r} ({', '.join(PRECISIONS)})")
    from absl import logging

    from cycle_medgan_tf.data.make_default import ensure_default
    from cycle_medgan_tf.training.trainer import TrainingError

    logging.set_verbosity(logging.WARNING)

    data = FLAGS.data or ensure_default("pet_ct", FLAGS.size)
    if not os.path.isfile(data):
        fail(f"{data}: no such store")
    runs = [(p, 0) for p in FLAGS.precisions]
    if FLAGS.noise_seed >= 0:
        runs.append((FLAGS.precisions[0], FLAGS.noise_seed))
    results = []
    for precision, seed in runs:
        workdir = os.path.join(FLAGS.out, f"{FLAGS.model}_{precision}_seed{seed}")
        if os.path.exists(workdir) and not FLAGS.overwrite:
            fail(f"{workdir} exists; use --overwrite or another --out")
        try:
            results.append(run_precision(precision, data, workdir, seed))
        except TrainingError as exc:
            fail(str(exc))
        print(json.dumps(results[-1]), flush=True)
    ref = results[0]
    for other in results[1:]:
        print(json.dumps(dict(
            compare=f"{other['precision']} seed {other['seed']} vs {ref['precision']} seed {ref['seed']}",
            speedup=round(ref["sec_per_step_median"] / other["sec_per_step_median"], 3),
            loss_relative_difference={k: round((other["final_losses"][k] - v) / abs(v), 4) if v else None
                                      for k, v in ref["final_losses"].items()},
            val_ssim_difference=round(other["val_ssim"] - ref["val_ssim"], 4),
            val_psnr_difference=round(other["val_psnr"] - ref["val_psnr"], 3))))


if __name__ == "__main__":
    define_flags()
    run_app(main)
