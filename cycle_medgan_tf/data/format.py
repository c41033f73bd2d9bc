"""The HDF5 slice-store format, version 1 (also in the README, "Data format"): its name, version, domains and
dataset paths, shared by the writer and reader (data/store.py) and the checks (data/checks.py).

Layout::

    file attrs:  format = "cycle-medgan-slices", version = 1, task, domain_a, domain_b, pixel_spacing_mm
    /train/A/images    (Na, H, W) float32     source domain, physical units
    /train/A/subjects  (Na,) utf-8 strings
    /train/B/images    (Nb, H, W) float32     target domain
    /train/B/subjects  (Nb,)
    /val/A/images      (M, H, W)  float32     row i of val/A and val/B is the same slice (paired)
    /val/B/images      (M, H, W)
    /val/subjects      (M,)
    group attrs on /train/A, /train/B: window = [lo, hi]
                                       normalisation = JSON {"method": ...} (optional; missing: "none")
"""

FORMAT_NAME = "cycle-medgan-slices"
FORMAT_VERSION = 1
DOMAINS = ("A", "B")
REQUIRED_ATTRS = ("format", "version", "task", "domain_a", "domain_b", "pixel_spacing_mm")
IMAGE_DATASETS = ("train/A/images", "train/B/images", "val/A/images", "val/B/images")
SUBJECT_DATASETS = {"train/A/subjects": "train/A/images", "train/B/subjects": "train/B/images",
                    "val/subjects": "val/A/images"}      # subject ids -> the images they label
