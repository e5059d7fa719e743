"""Losses of the LoRA training: the diffusion noise loss and three image-space losses on the predicted clean image.

Image-space losses (AU regressor, facenet identity, LPIPS) need models that may be missing here: facenet-pytorch and
lpips import torchvision, and their weights are never downloaded at run time. A loss whose model cannot load is
switched off with a warning; its :class:`LossStatus` (weight, on/off, reason) goes into the run card.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

FACENET_WEIGHTS = "20180402-114759-vggface2.pt"  # facenet-pytorch's VGGFace2 InceptionResnetV1
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet, LPIPS's default backbone
FACE_FRACTION = 1 / 1.3  # the face-oval box inside an aligned crop (training/align.py uses the engine's margin)


class LossUnavailable(RuntimeError):
    """The model behind a loss cannot be loaded here; the message says why and what would enable it."""


@dataclass
class LossStatus:
    weight: float
    active: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def torch_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return Path(os.environ.get("TORCH_HOME", default)).expanduser()


# --- diffusion ----------------------------------------------------------------------------------------------------


def noise_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet should predict under the scheduler's parameterisation (epsilon or v)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, t)
    raise ValueError(f"unsupported prediction_type {kind!r} (epsilon or v_prediction)")


def predict_x0(scheduler, noisy: torch.Tensor, model_out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The clean latents implied by one UNet prediction (differentiable)."""
    alpha = scheduler.alphas_cumprod.to(noisy.device)[t].float().view(-1, 1, 1, 1)
    noisy, model_out = noisy.float(), model_out.float()
    if scheduler.config.prediction_type == "v_prediction":
        return alpha.sqrt() * noisy - (1 - alpha).sqrt() * model_out
    return (noisy - (1 - alpha).sqrt() * model_out) / alpha.sqrt()


# --- optional models ----------------------------------------------------------------------------------------------


def load_identity_net() -> torch.nn.Module:
    """facenet-pytorch InceptionResnetV1 (VGGFace2) from the local torch cache."""
    try:
        from facenet_pytorch import InceptionResnetV1
    except Exception as exc:  # ImportError, or torchvision failing inside it
        raise LossUnavailable(f"facenet-pytorch cannot be imported ({type(exc).__name__}: {exc}); it needs "
                              "torchvision, which this environment does not have") from None
    path = torch_home() / "checkpoints" / FACENET_WEIGHTS
    if not path.is_file():
        raise LossUnavailable(f"facenet VGGFace2 weights not found at {path} (never downloaded at run time)")
    net = InceptionResnetV1(pretrained=None, classify=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    return net.eval().requires_grad_(False)


def load_lpips_net() -> torch.nn.Module:
    """LPIPS (AlexNet) with the AlexNet weights already in the local torch cache."""
    try:
        import lpips
    except Exception as exc:
        raise LossUnavailable(f"lpips cannot be imported ({type(exc).__name__}: {exc}); it needs torchvision, "
                              "which this environment does not have") from None
    path = torch_home() / "hub" / "checkpoints" / ALEXNET_WEIGHTS
    if not path.is_file():
        raise LossUnavailable(f"AlexNet weights for LPIPS not found at {path} (never downloaded at run time)")
    return lpips.LPIPS(net="alex", verbose=False).eval().requires_grad_(False)


def _face_centre(images: torch.Tensor, size: int) -> torch.Tensor:
    side = images.shape[-1]
    crop = round(side * FACE_FRACTION)
    off = (side - crop) // 2
    return F.interpolate(images[..., off:off + crop, off:off + crop], size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False)


class ImageLosses:
    """AU, identity and LPIPS losses of decoded x0 against the real image and its AU labels."""

    def __init__(self, au_regressor, au_columns: list[int] | None, identity, lpips_net, status: dict[str, LossStatus]):
        self.au_regressor, self.au_columns = au_regressor, au_columns
        self.identity, self.lpips = identity, lpips_net
        self.status = status

    @property
    def any_active(self) -> bool:
        return any(s.active for name, s in self.status.items() if name != "noise")

    def to(self, device) -> "ImageLosses":
        for net in (self.au_regressor, self.identity, self.lpips):
            if net is not None:
                net.to(device)
        return self

    def __call__(self, x0_images: torch.Tensor, real: torch.Tensor, au: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted losses of the active terms; images are (B, 3, S, S) in [-1, 1]."""
        out = {}
        if self.status["au"].active:
            pred = self.au_regressor(x0_images)[:, self.au_columns]
            out["au"] = F.mse_loss(pred.float(), au.float())
        if self.status["identity"].active:
            emb = F.normalize(self.identity(_face_centre(x0_images, 160)), dim=-1)
            with torch.no_grad():
                ref = F.normalize(self.identity(_face_centre(real, 160)), dim=-1)
            out["identity"] = (1 - (emb * ref).sum(-1)).mean().float()
        if self.status["lpips"].active:
            out["lpips"] = self.lpips(x0_images, real).mean().float()
        return out


def build_image_losses(lambda_au: float, lambda_id: float, lambda_lpips: float, regressor_dir: str | None,
                       au_keys: tuple[str, ...], warn) -> ImageLosses:
    """Load what the weighted losses need; anything that cannot load is switched off via ``warn(message)``."""
    from training.au_regressor import load_regressor

    status = {"noise": LossStatus(1.0, True)}
    regressor = columns = None
    if lambda_au > 0 and regressor_dir is None:
        status["au"] = LossStatus(lambda_au, False, "no --au_regressor given (train one with python -m "
                                                    "training.train_au_regressor)")
    elif lambda_au > 0:
        try:
            regressor = load_regressor(regressor_dir)
        except (FileNotFoundError, ValueError) as exc:
            status["au"] = LossStatus(lambda_au, False, str(exc))
        else:
            missing = [k for k in au_keys if k not in regressor.au_keys]
            if missing:
                raise ValueError(f"AU regressor {regressor_dir} does not predict {missing}; retrain it on these AUs")
            columns = [regressor.au_keys.index(k) for k in au_keys]
            status["au"] = LossStatus(lambda_au, True)
    nets = {}
    for name, weight, loader in (("identity", lambda_id, load_identity_net), ("lpips", lambda_lpips, load_lpips_net)):
        if weight <= 0:
            continue
        try:
            nets[name] = loader()
        except LossUnavailable as exc:
            status[name] = LossStatus(weight, False, str(exc))
        else:
            status[name] = LossStatus(weight, True)
    for name in ("au", "identity", "lpips"):
        status.setdefault(name, LossStatus(0.0, False, "weight 0"))
        if status[name].weight > 0 and not status[name].active:
            warn(f"{name} loss (lambda {status[name].weight:g}) is OFF: {status[name].reason}")
    return ImageLosses(regressor, columns, nets.get("identity"), nets.get("lpips"), status)
