"""Packaging for cycle-medgan-tf."""

from setuptools import find_packages, setup

setup(
    name="cycle-medgan-tf",
    version="0.1.0",
    description="Unpaired medical image translation (Cycle-MedGAN, CycleGAN, UNIT) in TensorFlow 2 / Keras 3",
    python_requires=">=3.10",
    packages=find_packages(include=["cycle_medgan_tf", "cycle_medgan_tf.*", "baselines", "baselines.*"]),
    package_data={"cycle_medgan_tf": ["data/assets/*.npz", "data/assets/*.txt"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorboard>=2.16",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-image>=0.21",
        "h5py>=3.8",
        "absl-py>=1.4",
        "matplotlib>=3.7",
        "nibabel>=5.0",
        "pydicom>=2.4",
    ],
    # pytest 9.2 moved the node id out of the attribute pytest-xdist 3.8 rewrites for --dist=loadgroup, so groups
    # are silently split (tests/conftest.py refuses that); 9.1 is the newest that works with it.
    extras_require={"test": ["pytest>=7.3,<9.2", "pytest-xdist>=3.6", "hypothesis>=6", "sewar>=0.4.6",
                             "ruff>=0.5"]},
)
