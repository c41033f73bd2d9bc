"""CycleGAN baseline, faithful to xhujoy/CycleGAN-tensorflow: the Cycle-MedGAN trainer with its two cycle
feature losses switched off (ResNet-9 generators, 70x70 PatchGANs, LSGAN, cycle L1 x 10, no identity loss,
50-image pools, Adam 2e-4 / 0.5, linear decay over the second half)."""

from __future__ import annotations

from cycle_medgan_tf.training.cycle import CycleTrainer


class CycleGANTrainer(CycleTrainer):
    """CycleGAN: the shared cycle trainer; ``check_config`` refuses non-zero feature-loss weights for it."""
