"""Pixel fidelity between source and output: PSNR and SSIM (scikit-image), whole image and face region; LPIPS.

SSIM uses the settings of Wang et al. (2004) and MATLAB's ``ssim``: Gaussian window sigma 1.5, population
covariance, on RGB (mean over channels) with data range 255, in float32. The face-region SSIM is the mean of the same
SSIM map over the region, so the background never dilutes it; the face-region PSNR is PSNR over the region's pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SSIM_ARGS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0)
_SSIM_RADIUS = 5  # of scikit-image's Gaussian window for sigma 1.5: 2 * int(3.5 * 1.5 + 0.5) + 1 = 11 pixels
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"  # torchvision's file name for LPIPS' AlexNet backbone


def psnr(ref: np.ndarray, out: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB over the image or a boolean region; inf for identical pixels."""
    if region is not None:
        ref, out = ref[region], out[region]
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(ref, out, data_range=255))


def ssim(ref: np.ndarray, out: np.ndarray, region: np.ndarray | None = None) -> tuple[float, float | None]:
    """(whole-image SSIM, mean SSIM over region or None), equal to scikit-image's full computation.

    Where a window sees identical pixels in both images, SSIM is exactly 1 (numerator and denominator are the same
    floating-point numbers), so only the box around the changed pixels, plus two window radii, is computed: local
    edits (the warp engine leaves everything outside the face pixel-exact) cost a fraction of the whole image.
    """
    changed = np.any(ref != out, axis=-1)
    if not changed.any():
        return 1.0, (1.0 if region is not None else None)
    ys, xs = np.nonzero(changed)
    m, (h, w) = 2 * _SSIM_RADIUS + 1, changed.shape
    y0, y1, x0, x1 = max(0, ys.min() - m), min(h, ys.max() + 1 + m), max(0, xs.min() - m), min(w, xs.max() + 1 + m)
    _, part = structural_similarity(ref[y0:y1, x0:x1].astype(np.float32), out[y0:y1, x0:x1].astype(np.float32),
                                    channel_axis=-1, full=True, **SSIM_ARGS)
    smap = np.ones(ref.shape, np.float32)
    smap[y0:y1, x0:x1] = part
    p = _SSIM_RADIUS  # scikit-image averages the map without a border of one window radius
    whole = float(smap[p:h - p, p:w - p].mean(dtype=np.float64))
    return whole, (float(smap[region].mean(dtype=np.float64)) if region is not None else None)


class Lpips:
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018); lower = more similar."""

    def __init__(self):
        from aufx.identity.optional import import_or_explain

        lpips = import_or_explain("lpips", "lpips")
        import torch
        cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
        if not cached.is_file():
            raise FileNotFoundError(f"AlexNet weights not found at {cached}; AUFX never downloads at run time, "
                                    "put the file there to enable LPIPS")
        self._torch, self._net = torch, lpips.LPIPS(net="alex", verbose=False).eval()

    def __call__(self, ref: np.ndarray, out: np.ndarray) -> float:
        def tensor(img):
            return self._torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1.0

        with self._torch.inference_mode():
            return float(self._net(tensor(ref), tensor(out)).item())


def load_lpips() -> Lpips:
    return Lpips()
