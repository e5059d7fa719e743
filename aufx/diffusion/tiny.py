"""Randomly initialised SD1.5-shaped models saved as diffusers folders, for tests and benchmarks without weights.

``full_size=False``: tiny components (VAE downsampling x2, 32/64-channel UNet) that run in milliseconds on a CPU.
``full_size=True``: the published SD1.5 shapes (UNet 320/640/1280/1280 with cross-attention 768, VAE
128/256/512/512, CLIP ViT-L/14 text encoder, SD1.5 ControlNet) with random weights, to measure latency and memory.
Both are saved and loaded through the same code path as a downloaded model. The outputs are noise, by design.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, sample_size=64,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SD15_CONTROLNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                       attention_head_dim=8, conditioning_embedding_out_channels=(16, 32, 96, 256),
                       down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",))

TINY_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=4,
                 sample_size=32, norm_num_groups=16,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
TINY_VAE = dict(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4, sample_size=64,
                norm_num_groups=16, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2)
TINY_TEXT = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32)
TINY_CONTROLNET = dict(block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=4,
                       norm_num_groups=16, conditioning_embedding_out_channels=(16, 32),
                       down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"))


# TAESD's published shape (madebyollin/taesd): AutoencoderTiny's defaults; the tiny variant for CPU tests is narrower
TAESD = dict(encoder_block_out_channels=(64, 64, 64, 64), decoder_block_out_channels=(64, 64, 64, 64))
TINY_TAESD = dict(encoder_block_out_channels=(16, 16, 16, 16), decoder_block_out_channels=(16, 16, 16, 16))


@dataclass(frozen=True)
class TinyModel:
    model_dir: Path
    controlnet_dir: Path | None


def byte_level_tokenizer():
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (plus end-of-word forms) and no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab[s] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_components(full_size: bool = False, controlnet: bool = True, seed: int = 0, device: str = "cpu") -> dict:
    """Random SD1.5-shaped components keyed like a pipeline's ``components`` (+ ``controlnet``)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = byte_level_tokenizer()
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    with torch.device(device):
        parts = {
            "unet": UNet2DConditionModel(**(SD15_UNET if full_size else TINY_UNET)),
            "vae": AutoencoderKL(**(SD15_VAE if full_size else TINY_VAE)),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**(SD15_TEXT if full_size else TINY_TEXT), **ids)),
            "tokenizer": tokenizer,
            "scheduler": PNDMScheduler(**SD15_SCHEDULER),
        }
        if controlnet:
            cn = ControlNetModel(**(SD15_CONTROLNET if full_size else TINY_CONTROLNET))
            # a trained ControlNet's zero convolutions are non-zero; random ones make the condition image matter
            for conv in [cn.controlnet_cond_embedding.conv_out, *cn.controlnet_down_blocks, cn.controlnet_mid_block]:
                torch.nn.init.normal_(conv.weight, std=0.05)
            parts["controlnet"] = cn
    return parts


def save_tiny_model(root: str | Path, full_size: bool = False, controlnet: bool = True, seed: int = 0,
                    dtype: str = "float32", device: str = "cpu") -> TinyModel:
    """Write ``root/sd15`` (diffusers pipeline folder) and ``root/controlnet``; returns their paths."""
    import torch
    from diffusers import StableDiffusionPipeline

    root = Path(root)
    parts = build_components(full_size=full_size, controlnet=controlnet, seed=seed, device=device)
    cn = parts.pop("controlnet", None)
    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    if dtype != "float32":  # e.g. float16 halves the full-size folder (2 GB instead of 4)
        pipe.to(dtype=getattr(torch, dtype))
        cn = cn.to(dtype=getattr(torch, dtype)) if cn is not None else None
    pipe.save_pretrained(root / "sd15")
    if cn is not None:
        cn.save_pretrained(root / "controlnet")
    return TinyModel(root / "sd15", root / "controlnet" if cn is not None else None)


def save_tiny_autoencoder(root: str | Path, full_size: bool = False, seed: int = 0, dtype: str = "float32") -> Path:
    """Write a random TAESD-shaped AutoencoderTiny to ``root/taesd`` (loaded like ``hf download madebyollin/taesd``)."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    vae = AutoencoderTiny(**(TAESD if full_size else TINY_TAESD)).to(getattr(torch, dtype))
    vae.save_pretrained(Path(root) / "taesd")
    return Path(root) / "taesd"
