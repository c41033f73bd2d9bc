"""The reproduce script's combined Table I (both halves beside the paper's numbers) and stacked Fig. 3."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402

from cycle_medgan_tf.commands.reproduce import NOTE, combined_markdown, stack_figures  # noqa: E402


def _result(task, ssim):
    metric = lambda v: {"mean": v, "std": 0.01, "ci95": [v - 0.01, v + 0.01]}
    models = {name: {"ssim": metric(s), "psnr": metric(20 + s), "lpips": metric(1 - s), "vif": metric(s / 2)}
              for name, s in (("UNIT", ssim - 0.1), ("CycleGAN", ssim), ("Cycle-MedGAN", ssim + 0.05))}
    return {"task": task, "split": "val", "n_slices": 32, "models": models}


def test_combined_table_has_both_tasks_beside_the_paper():
    text = combined_markdown([_result("pet_ct", 0.7), _result("mr_motion", 0.6)], "quick", 1800.0)
    assert "| pet_ct | Cycle-MedGAN | **0.7500 ± 0.0100** (paper 0.9115)" in text
    assert "| mr_motion | UNIT | 0.5000 ± 0.0100 (paper 0.6914)" in text
    assert "30.0 min" in text and NOTE in text and "profile `quick`" in text


def test_stack_figures_pads_to_the_widest(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    mpimg.imsave(a, np.zeros((10, 20, 3)))
    mpimg.imsave(b, np.ones((5, 30, 3)))
    stack_figures([str(a), str(b)], str(tmp_path / "out.png"))
    out = mpimg.imread(tmp_path / "out.png")
    assert out.shape[:2] == (15, 30)
