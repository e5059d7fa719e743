"""Loading the diffusion pipeline: local files only by default, clear messages when weights are missing, one
cached pipeline per (model, LoRA, ControlNet, LCM-LoRA, tiny VAE, dtype, device, speed options) so slider moves never
reload. Speed options (DiffusionConfig: tiny_vae_path, channels_last, attention, compile / compile_mode) are applied
here; eval/bench_diffusion.py measures each."""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aufx.io.digest import sha256_file
from aufx.diffusion.config import DiffusionConfig
from aufx.diffusion.errors import EngineUnavailable, ModelUnavailable

log = logging.getLogger(__name__)

SD_INCLUDE = ("model_index.json", "scheduler/*", "tokenizer/*", "text_encoder/config.json",
              "text_encoder/model.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
              "vae/config.json", "vae/diffusion_pytorch_model.safetensors")
SD_COMPONENTS = ("scheduler", "tokenizer", "text_encoder", "unet", "vae")


@dataclass(frozen=True)
class Runtime:
    device: str
    dtype: str
    note: str = ""  # why the request was changed (e.g. float16 on CPU), for logs and the output sidecar

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def resolve_runtime(device: str, dtype: str) -> Runtime:
    """Pick the device and dtype; float16 on CPU falls back to float32 (the note says so; loading logs it)."""
    import torch

    has_mps = torch.backends.mps.is_available()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailable(f"device 'cuda' requested but torch {torch.__version__} sees no CUDA GPU; "
                                f"use --device cpu (slow) or install a CUDA build of torch")
    elif device == "mps" and not has_mps:
        raise EngineUnavailable("device 'mps' requested but this machine has no Apple MPS backend; use --device cpu")
    note = ""
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else "float16"
    elif dtype == "float16" and device == "cpu":
        note = "float16 requested on CPU, which diffusers cannot run there; using float32"
        dtype = "float32"
    return Runtime(device, dtype, note)


def _is_local(name: str) -> bool:
    """Existing paths, and names no Hub id can have ("./x", "/x", "~/x", "a/b/c", "a\\b")."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _offline_note(allow_download: bool) -> str:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set, so nothing is downloaded"
    return "downloads are allowed" if allow_download else "downloads are off (pass --allow_download to allow them)"


def _missing_model_message(model: str, allow_download: bool, error: Exception) -> str:
    name = model.rstrip("/").split("/")[-1]
    include = " ".join(f'"{p}"' for p in SD_INCLUDE)
    folder = Path(model).resolve()
    not_a_folder = f" and there is no folder {folder}" if "/" in model else ""
    return (
        f"Diffusion engine: the weights of {model!r} are not available locally ({_offline_note(allow_download)})"
        f"{not_a_folder}. The warp engine still works.\n"
        f"Fetch them once (SD1.5: about 4.3 GB), then point --model at the folder:\n"
        f"  hf download {model} --local-dir models/{name} --include {include}\n"
        f"  python -m aufx edit --engine diffusion --model models/{name} ...\n"
        f"or download into the Hugging Face cache (same command without --local-dir) and keep --model {model}.\n"
        f"(loader said: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    )


def _check_local_model(folder: Path) -> None:
    if not folder.is_dir():
        raise ModelUnavailable(f"Diffusion engine: model folder {folder} does not exist. Download a Stable Diffusion "
                               f"1.5 diffusers folder into it, e.g.\n  hf download stable-diffusion-v1-5/"
                               f"stable-diffusion-v1-5 --local-dir {folder} --include "
                               + " ".join(f'"{p}"' for p in SD_INCLUDE))
    missing = [p for p in ("model_index.json", *SD_COMPONENTS) if not (folder / p).exists()]
    if missing:
        raise ModelUnavailable(
            f"Diffusion engine: {folder} is not a complete diffusers Stable Diffusion folder; missing: "
            f"{', '.join(missing)}. Expected layout: model_index.json, scheduler/scheduler_config.json, "
            f"tokenizer/ (tokenizer files), text_encoder/{{config.json,model.safetensors}}, "
            f"unet/{{config.json,diffusion_pytorch_model.safetensors}}, "
            f"vae/{{config.json,diffusion_pytorch_model.safetensors}} — as written by "
            f"`hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir {folder}`.")


def _load_base(cfg: DiffusionConfig, rt: Runtime):
    from diffusers import StableDiffusionImg2ImgPipeline

    local = _is_local(cfg.model)
    source = str(Path(cfg.model).expanduser().resolve()) if local else cfg.model
    if local:
        _check_local_model(Path(source))
    try:
        return StableDiffusionImg2ImgPipeline.from_pretrained(
            source, dtype=rt.torch_dtype, local_files_only=local or not cfg.allow_download, use_safetensors=True,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    except (OSError, ValueError) as e:
        if local:
            raise ModelUnavailable(f"Diffusion engine: could not load {source} ({e}). Re-download it, e.g. "
                                   f"`hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir {source}`, "
                                   f"or point --model at a complete diffusers folder (.safetensors weights).") from e
        raise ModelUnavailable(_missing_model_message(cfg.model, cfg.allow_download, e)) from e


def _load_controlnet(cfg: DiffusionConfig, rt: Runtime):
    from diffusers import ControlNetModel

    path = cfg.controlnet_path
    local = _is_local(path)
    hint = ("a ControlNet trained on AUFX mesh drawings (training/)" if cfg.cond == "mesh"
            else "e.g. `hf download lllyasviel/control_v11p_sd15_canny --local-dir models/controlnet-canny "
                 "--include config.json diffusion_pytorch_model.safetensors`")
    if local and not (Path(path).expanduser() / "config.json").is_file():
        raise ModelUnavailable(f"Diffusion engine: ControlNet folder {path} has no config.json; it should hold "
                               f"config.json and diffusion_pytorch_model.safetensors: {hint}. Or drop "
                               f"--controlnet_path.")
    try:
        return ControlNetModel.from_pretrained(str(Path(path).expanduser()) if local else path,
                                               dtype=rt.torch_dtype, use_safetensors=True,
                                               local_files_only=local or not cfg.allow_download)
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"Diffusion engine: ControlNet {path!r} is not available locally "
                               f"({_offline_note(cfg.allow_download)}): {hint}. Or drop --controlnet_path. "
                               f"(loader said: {type(e).__name__})") from e


def _load_tiny_vae(cfg: DiffusionConfig, rt: Runtime):
    """A TAESD-shaped AutoencoderTiny (diffusers folder) that replaces the VAE: a fraction of its cost per edit."""
    from diffusers import AutoencoderTiny

    path = cfg.tiny_vae_path
    local = _is_local(path)
    fetch = ("fetch it with `hf download madebyollin/taesd --local-dir models/taesd` and pass --tiny_vae_path "
             "models/taesd, or drop --tiny_vae_path to use the model's own VAE")
    if local and not (Path(path).expanduser() / "config.json").is_file():
        raise ModelUnavailable(f"Diffusion engine: tiny autoencoder folder {path} has no config.json; {fetch}.")
    try:
        return AutoencoderTiny.from_pretrained(str(Path(path).expanduser()) if local else path, dtype=rt.torch_dtype,
                                               local_files_only=local or not cfg.allow_download)
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"Diffusion engine: tiny autoencoder {path!r} is not available locally "
                               f"({_offline_note(cfg.allow_download)}); {fetch}. (loader said: "
                               f"{type(e).__name__})") from e


def _apply_speed_options(pipe, cfg: DiffusionConfig) -> None:
    import torch

    if cfg.attention == "classic":
        from diffusers.models.attention_processor import AttnProcessor

        pipe.unet.set_attn_processor(AttnProcessor())
        if getattr(pipe, "controlnet", None) is not None:
            pipe.controlnet.set_attn_processor(AttnProcessor())
    if cfg.channels_last:
        for name in ("unet", "vae", "controlnet"):
            model = getattr(pipe, name, None)
            if model is not None:
                model.to(memory_format=torch.channels_last)
    if cfg.compile:
        pipe.unet = torch.compile(pipe.unet, mode=None if cfg.compile_mode == "default" else cfg.compile_mode)


def _fuse_lcm_lora(pipe, cfg: DiffusionConfig) -> None:
    path = cfg.lcm_lora_path
    local = _is_local(path)
    try:
        pipe.load_lora_weights(str(Path(path).expanduser()) if local else path, adapter_name="lcm",
                               local_files_only=local or not cfg.allow_download)
    except (OSError, ValueError) as e:
        raise ModelUnavailable(
            f"Diffusion engine: LCM-LoRA {path!r} is not available locally ({_offline_note(cfg.allow_download)}). "
            f"Fetch it with `hf download latent-consistency/lcm-lora-sdv1-5 --local-dir models/lcm-lora-sdv1-5` "
            f"and pass --lcm_lora_path models/lcm-lora-sdv1-5, or leave it out to use DPM-Solver++ in few-step "
            f"mode. (loader said: {type(e).__name__})") from e
    pipe.fuse_lora(adapter_names=["lcm"])
    pipe.unload_lora_weights()


def _load_au_lora(pipe, cfg: DiffusionConfig):
    from aufx.diffusion.lora_io import load_lora

    path = Path(cfg.lora_path).expanduser()
    if not path.is_file():
        raise ModelUnavailable(f"Diffusion engine: LoRA file {path} not found. Train one (training/) or drop "
                               f"--lora_path to refine with the base model.")
    return load_lora(path, pipe.unet)


@dataclass
class LoadedPipeline:
    """A ready pipeline with its AU encoder, schedulers and prompt-embedding cache; ``lock`` serialises edits."""

    pipe: Any
    au_encoder: Any
    runtime: Runtime
    info: dict
    lock: threading.Lock = field(default_factory=threading.Lock)
    _schedulers: dict = field(default_factory=dict)
    _prompts: dict = field(default_factory=dict)

    def use_scheduler(self, cfg: DiffusionConfig) -> str:
        """Install the full-mode (the model's own) or few-step scheduler; returns its class name."""
        from diffusers import DPMSolverMultistepScheduler, LCMScheduler

        if not self._schedulers:
            self._schedulers["full"] = self.pipe.scheduler
        kind = ("lcm" if cfg.lcm_lora_path else "dpm") if cfg.few_step else "full"
        if kind not in self._schedulers:
            base = self._schedulers["full"].config
            self._schedulers[kind] = (LCMScheduler.from_config(base) if kind == "lcm" else
                                      DPMSolverMultistepScheduler.from_config(base, algorithm_type="dpmsolver++"))
        self.pipe.scheduler = self._schedulers[kind]
        return type(self.pipe.scheduler).__name__

    def prompt_embeds(self, prompt: str, negative_prompt: str, cfg_on: bool):
        """(positive, negative-or-None) text embeddings, computed once per prompt pair."""
        key = (prompt, negative_prompt, cfg_on)
        if key not in self._prompts:
            self._prompts[key] = self.pipe.encode_prompt(prompt, self.pipe._execution_device, 1, cfg_on,
                                                         negative_prompt)
        return self._prompts[key]


def cache_key(cfg: DiffusionConfig, rt: Runtime) -> tuple:
    def norm(p):
        return str(Path(p).expanduser().resolve()) if p and _is_local(p) else p

    return (norm(cfg.model), norm(cfg.lora_path), norm(cfg.controlnet_path),
            norm(cfg.lcm_lora_path) if cfg.few_step else None, norm(cfg.tiny_vae_path), rt.dtype, rt.device,
            cfg.compile and cfg.compile_mode, cfg.channels_last, cfg.attention)


def load_pipeline(cfg: DiffusionConfig, rt: Runtime) -> LoadedPipeline:
    """Load everything the config names from local files (or the Hub when allowed); no caching here."""
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    if rt.note:
        log.warning(rt.note)
    pipe = _load_base(cfg, rt)
    if cfg.few_step and cfg.lcm_lora_path:
        _fuse_lcm_lora(pipe, cfg)
    encoder = _load_au_lora(pipe, cfg) if cfg.lora_path else None
    if cfg.tiny_vae_path:
        pipe.register_modules(vae=_load_tiny_vae(cfg, rt))
    if cfg.controlnet_path:
        pipe = StableDiffusionControlNetImg2ImgPipeline(**pipe.components, controlnet=_load_controlnet(cfg, rt),
                                                        requires_safety_checker=False)
    pipe.to(rt.device)  # LoRA layers take their base layer's dtype; the AU encoder stays float32
    pipe.set_progress_bar_config(disable=True)
    if encoder is not None:
        encoder.to(rt.device)
    _apply_speed_options(pipe, cfg)
    info = {"model": cfg.model, "device": rt.device, "dtype": rt.dtype}
    if cfg.lora_path:
        info["lora_sha256"] = sha256_file(Path(cfg.lora_path).expanduser())
    return LoadedPipeline(pipe=pipe, au_encoder=encoder, runtime=rt, info=info)


class PipelineCache:
    """Small LRU of loaded pipelines; a load happens once per key even when edits arrive from several threads."""

    def __init__(self, max_entries: int = 2):
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, LoadedPipeline] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cfg: DiffusionConfig) -> LoadedPipeline:
        rt = resolve_runtime(cfg.device, cfg.dtype)
        key = cache_key(cfg, rt)
        with self._lock:
            if key in self._entries:
                self.hits += 1
                self._entries.move_to_end(key)
                return self._entries[key]
            self.misses += 1
            loaded = load_pipeline(cfg, rt)
            self._entries[key] = loaded
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                _free_accelerator_memory()
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            _free_accelerator_memory()


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


CACHE = PipelineCache()


def get_pipeline(cfg: DiffusionConfig) -> LoadedPipeline:
    """The process-wide cached pipeline for this config."""
    return CACHE.get(cfg)
