"""The AUFX LoRA file: UNet attention LoRA (peft) and the AU encoder in one .safetensors file.

Layout (format "aufx-lora", version 1):
- tensors ``unet.<peft key>``: ``get_peft_model_state_dict(unet, adapter_name="aufx")`` keys, e.g.
  ``unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight``;
- tensors ``au_encoder.<parameter>``: the :class:`AUEncoder` state dict;
- string metadata: ``format``, ``format_version``, ``rank``, ``alpha``, ``target_modules`` (JSON list),
  ``au_encoder`` (JSON: channels in input order, n_tokens, token_dim, hidden), ``base_model``, plus free-form extras
  (the training run writes its own, e.g. steps and data set).
One file so the LoRA and the encoder it was trained with cannot be separated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aufx.au import channels as au_channels
from aufx.diffusion.au_encoder import AUEncoder
from aufx.diffusion.errors import LoraFileError

FORMAT = "aufx-lora"
FORMAT_VERSION = "1"
ADAPTER = "aufx"


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 16
    alpha: float = 16.0
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")


def attach_lora(unet, spec: LoraSpec) -> None:
    """Add a fresh AUFX adapter to a diffusers UNet (LoRA B starts at zero: the UNet output is unchanged)."""
    from peft import LoraConfig

    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, target_modules=list(spec.target_modules),
                        init_lora_weights=True)
    unet.add_adapter(config, adapter_name=ADAPTER)


def save_lora(path: str | Path, unet, au_encoder: AUEncoder, base_model: str = "",
              extra_metadata: dict[str, str] | None = None) -> Path:
    """Write the UNet's AUFX adapter and the AU encoder to ``path``; returns the path."""
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    peft_config = unet.peft_config[ADAPTER]
    tensors = {f"unet.{k}": v.detach().contiguous().cpu()
               for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()}
    tensors.update({f"au_encoder.{k}": v.detach().contiguous().cpu() for k, v in au_encoder.state_dict().items()})
    metadata = {
        **(extra_metadata or {}),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rank": str(peft_config.r),
        "alpha": str(peft_config.lora_alpha),
        "target_modules": json.dumps(sorted(peft_config.target_modules)),
        "au_encoder": json.dumps(au_encoder.config()),
        "base_model": base_model,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise LoraFileError(f"{path}: not an AUFX LoRA file (metadata 'format' is {metadata.get('format')!r}, "
                            f"expected {FORMAT!r}); write it with aufx.diffusion.lora_io.save_lora")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise LoraFileError(f"{path}: format_version {metadata.get('format_version')!r} is not supported "
                            f"(this AUFX reads version {FORMAT_VERSION})")
    return metadata


def load_lora(path: str | Path, unet) -> AUEncoder:
    """Attach the file's adapter to ``unet`` with its weights and return its AU encoder (on CPU, float32)."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    tensors = load_file(str(path))
    spec = LoraSpec(rank=int(metadata["rank"]), alpha=float(metadata["alpha"]),
                    target_modules=tuple(json.loads(metadata["target_modules"])))
    enc_cfg = json.loads(metadata["au_encoder"])
    width = unet.config.cross_attention_dim
    if enc_cfg["token_dim"] != width:
        raise LoraFileError(f"{path}: AU tokens are {enc_cfg['token_dim']} wide but the model's text embedding is "
                            f"{width} wide; the LoRA was trained for another base model ({metadata['base_model']!r})")
    unknown_channels = sorted(set(enc_cfg["channels"]) - set(au_channels()))
    if unknown_channels:
        raise LoraFileError(f"{path}: AU encoder uses channels this AUFX does not know: {unknown_channels}")

    attach_lora(unet, spec)
    lora_sd = {k[len("unet."):]: v for k, v in tensors.items() if k.startswith("unet.")}
    expected = set(get_peft_model_state_dict(unet, adapter_name=ADAPTER))
    if set(lora_sd) != expected:
        unet.delete_adapters(ADAPTER)
        missing, unknown = sorted(expected - set(lora_sd)), sorted(set(lora_sd) - expected)
        raise LoraFileError(f"{path}: LoRA does not fit this UNet ({len(missing)} missing, {len(unknown)} unknown "
                            f"tensors, e.g. {(missing + unknown)[:2]}); base model {metadata['base_model']!r}")
    set_peft_model_state_dict(unet, lora_sd, adapter_name=ADAPTER)

    encoder = AUEncoder(enc_cfg["channels"], enc_cfg["n_tokens"], enc_cfg["token_dim"], enc_cfg["hidden"])
    enc_sd = {k[len("au_encoder."):]: v for k, v in tensors.items() if k.startswith("au_encoder.")}
    try:
        encoder.load_state_dict(enc_sd, strict=True)
    except RuntimeError as e:
        raise LoraFileError(f"{path}: AU encoder weights do not match its metadata: {e}") from None
    return encoder.eval().requires_grad_(False)
