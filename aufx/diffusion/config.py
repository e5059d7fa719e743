"""Diffusion engine settings: one dataclass holding every default, plus the argparse flags that fill it.

Importing this module is cheap (no torch), so the CLI can register the flags without loading the engine.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CONDITIONS = ("mesh", "canny")
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float16", "float32")
ATTENTION = ("sdpa", "classic")  # torch scaled_dot_product_attention (diffusers' default) or the explicit softmax
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # reduce-overhead = CUDA graphs (fixed shapes)
# Peak GPU memory of one 512x512 refine with SD1.5 shapes in float16 (tests/test_diffusion_gpu.py holds edits to it;
# measured 2.64 GiB without and 5.37 GiB with a ControlNet on an H200, torch 2.11, diffusers 0.42.1)
GPU_MEMORY_BUDGET_GIB = 3.5
GPU_MEMORY_BUDGET_CONTROLNET_GIB = 6.5


@dataclass(frozen=True)
class DiffusionConfig:
    # --- weights (each a Hugging Face id or a local folder / file) ---
    model: str = DEFAULT_MODEL  # SD1.5-shaped diffusers folder or Hub id
    lora_path: str | None = None  # AUFX LoRA + AU encoder .safetensors (aufx.diffusion.lora_io); None = base model
    controlnet_path: str | None = None  # SD1.5 ControlNet (diffusers folder or Hub id); None = plain img2img
    cond: str = "mesh"  # ControlNet input: "mesh" (AU-deformed landmark drawing) or "canny" (edges of the warp)
    controlnet_scale: float = 1.0  # controlnet_conditioning_scale
    # --- sampling ---
    prompt: str = "a high quality photograph of a person's face, natural skin texture, detailed eyes and teeth"
    negative_prompt: str = "blurry, deformed, distorted face, cartoon, painting, lowres"
    strength: float = 0.35  # img2img noise level: low keeps the warp's geometry and identity
    guidance_scale: float = 7.5
    steps: int = 25  # scheduler steps (diffusers convention): int(steps * strength) denoising steps run
    seed: int = 0  # default seed; DiffusionEngine.refine(seed=...) overrides it per edit
    # --- live mode ---
    few_step: bool = False  # few-step scheduler for live sliders
    few_step_steps: int = 4  # scheduler steps in few-step mode
    lcm_lora_path: str | None = None  # LCM-LoRA fused into the UNet in few-step mode; None = DPM-Solver++ instead
    lcm_guidance_scale: float = 1.0  # LCM-LoRA is distilled for guidance ~1 (1 also skips the unconditional pass)
    # --- face region ---
    crop_size: int = 512  # side of the square face crop the model sees (SD1.5 is trained at 512)
    crop_margin: float = 0.15  # context added around the mask's bounding box, as a fraction of its side
    feather: float = 0.05  # inward blend ramp, as a fraction of the crop box side
    # --- runtime ---
    device: str = "auto"  # auto = cuda, else mps, else cpu
    dtype: str = "auto"  # auto = float16 on cuda/mps, float32 on cpu; float16 on cpu falls back to float32 (logged)
    compile: bool = False  # torch.compile the UNet (slow first edit, faster after)
    compile_mode: str = "default"  # torch.compile mode; "reduce-overhead" replays CUDA graphs (shapes are fixed)
    tiny_vae_path: str | None = None  # TAESD-shaped AutoencoderTiny folder (e.g. madebyollin/taesd) instead of the VAE
    channels_last: bool = False  # UNet / VAE / ControlNet in channels-last memory format (faster convs on GPUs)
    attention: str = "sdpa"  # attention kernel: "sdpa" (fused, diffusers' default) or "classic" (for comparison)
    allow_download: bool = False  # fetch missing weights from the Hub; off = local files only

    def __post_init__(self) -> None:
        if self.cond not in CONDITIONS:
            raise ValueError(f"cond must be one of {CONDITIONS}, got {self.cond!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {self.attention!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if int(self.active_steps * self.strength) < 1:
            raise ValueError(
                f"{self.active_steps} steps at strength {self.strength} run no denoising step "
                f"(img2img runs int(steps * strength)); raise the steps or the strength"
            )
        if self.crop_size % 64:
            raise ValueError(f"crop_size must be a multiple of 64, got {self.crop_size}")

    @property
    def active_steps(self) -> int:
        return self.few_step_steps if self.few_step else self.steps

    @property
    def active_guidance_scale(self) -> float:
        return self.lcm_guidance_scale if (self.few_step and self.lcm_lora_path) else self.guidance_scale

    def to_dict(self) -> dict:
        return asdict(self)


_HELP = {
    "model": "SD1.5 Hugging Face id or local diffusers folder",
    "lora_path": "AUFX LoRA + AU encoder .safetensors file",
    "controlnet_path": "SD1.5 ControlNet (local folder or Hugging Face id)",
    "cond": "ControlNet condition image",
    "controlnet_scale": "ControlNet conditioning scale",
    "prompt": "text prompt",
    "negative_prompt": "negative text prompt",
    "strength": "img2img strength (how much of the warp result is re-noised)",
    "guidance_scale": "classifier-free guidance scale",
    "steps": "scheduler steps; int(steps * strength) denoising steps run",
    "seed": "random seed",
    "few_step": "few-step live mode (LCM-LoRA with --lcm_lora_path, else DPM-Solver++)",
    "few_step_steps": "scheduler steps in few-step mode",
    "lcm_lora_path": "LCM-LoRA for SD1.5 used by --few_step (folder, .safetensors or Hub id, e.g. "
                     "latent-consistency/lcm-lora-sdv1-5)",
    "lcm_guidance_scale": "guidance scale used with the LCM-LoRA",
    "crop_size": "side of the face crop the model sees (multiple of 64)",
    "crop_margin": "context around the face mask, fraction of its size",
    "feather": "blend ramp inside the mask edge, fraction of the crop size",
    "device": "device",
    "dtype": "weights dtype",
    "compile": "torch.compile the UNet",
    "compile_mode": "torch.compile mode (reduce-overhead = CUDA graphs)",
    "tiny_vae_path": "TAESD-shaped tiny autoencoder folder used instead of the VAE (e.g. `hf download "
                     "madebyollin/taesd --local-dir models/taesd`)",
    "channels_last": "channels-last memory format for the convolutional models",
    "attention": "attention kernel",
    "allow_download": "allow downloading missing weights from the Hugging Face Hub",
}
_CHOICES = {"cond": CONDITIONS, "device": DEVICES, "dtype": DTYPES, "attention": ATTENTION,
            "compile_mode": COMPILE_MODES}


def add_diffusion_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register one ``--name`` flag per DiffusionConfig field; unset flags stay None so the dataclass default wins.

    Flags the parser already has (e.g. the edit command's own ``--seed``) are left as they are; config_from_args
    reads them by the same name.
    """
    group = parser.add_argument_group("diffusion engine")
    for f in fields(DiffusionConfig):
        flag = f"--{f.name}"
        if flag in parser._option_string_actions:
            continue
        default = f.default
        if isinstance(default, bool):
            group.add_argument(flag, action="store_true", default=None, help=_HELP[f.name])
            continue
        kind = {int: int, float: float}.get(type(default), str)
        group.add_argument(
            flag, type=kind, default=None, choices=_CHOICES.get(f.name), help=f"{_HELP[f.name]} (default: {default})"
        )
    return parser


def config_from_args(args: argparse.Namespace) -> DiffusionConfig:
    """Build the config from parsed args; flags left unset keep the dataclass defaults."""
    given = {f.name: getattr(args, f.name) for f in fields(DiffusionConfig) if getattr(args, f.name, None) is not None}
    return DiffusionConfig(**given)
