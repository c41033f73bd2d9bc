"""cycle-medgan-tf: unpaired medical image translation (Cycle-MedGAN, CycleGAN, UNIT) in TensorFlow 2 / Keras 3.

``from cycle_medgan_tf import Translator`` gives the inference API (:class:`cycle_medgan_tf.inference.Translator`);
it is imported on first use, so importing the package stays light.
"""

__version__ = "0.1.0"
__all__ = ["Translator"]


def __getattr__(name):
    if name == "Translator":
        from cycle_medgan_tf.inference import Translator

        return Translator
    raise AttributeError(f"module 'cycle_medgan_tf' has no attribute {name!r}")
