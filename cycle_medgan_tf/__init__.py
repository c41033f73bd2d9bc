"""cycle-medgan-tf: unpaired medical image translation (Cycle-MedGAN, CycleGAN, UNIT) in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
