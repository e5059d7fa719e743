"""Diffusion engine on tiny random SD1.5-shaped models, loaded from disk through the same path as real weights.

Everything runs offline on the CPU in float32, also on a machine with a GPU: several tests compare with plain
diffusers bit for bit, which holds for CPU float32 kernels but not for float16 CUDA kernels (they change their
reduction order when the token count changes). The CUDA path has its own tests: tests/test_diffusion_gpu.py
(``pytest -m gpu``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from aufx.au import AUVector, channels
from aufx.diffusion import region
from aufx.diffusion.au_encoder import AUEncoder, append_au_tokens, training_conditioning
from aufx.diffusion.conditioning import canny_edges, draw_mesh
from aufx.diffusion.config import DiffusionConfig, add_diffusion_args, config_from_args
from aufx.diffusion.errors import EngineUnavailable, LoraFileError, ModelUnavailable
from aufx.diffusion.loading import CACHE, get_pipeline, resolve_runtime
from aufx.diffusion.lora_io import LoraSpec, attach_lora, load_lora, read_metadata, save_lora
from aufx.diffusion.sampling import generate
from aufx.diffusion.tiny import TINY_UNET, save_tiny_autoencoder, save_tiny_model
from aufx.engines.diffusion import DiffusionEngine

ROOT = Path(__file__).resolve().parents[1]
SMILE = AUVector({"AU06": 0.6, "AU12": 0.8})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def _unet(tiny):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(tiny.model_dir / "unet")


def _write_lora(tiny, path, lora_random: bool, encoder_random: bool, seed: int = 0):
    """An AUFX LoRA file for the tiny model; fresh parts keep their zero initialisation."""
    gen = torch.Generator().manual_seed(seed)
    unet = _unet(tiny)
    attach_lora(unet, LoraSpec(rank=4, alpha=4.0))
    if lora_random:
        with torch.no_grad():
            for name, p in unet.named_parameters():
                if "lora_" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    encoder = AUEncoder(channels(), n_tokens=4, token_dim=unet.config.cross_attention_dim, hidden=16)
    if encoder_random:
        with torch.no_grad():
            for p in encoder.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
    return save_lora(path, unet, encoder, base_model="tiny-random", extra_metadata={"note": "test"}), unet, encoder


@pytest.fixture(scope="module")
def loras(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    return {
        "fresh": _write_lora(tiny, d / "fresh.safetensors", False, False)[0],
        "encoder_only": _write_lora(tiny, d / "encoder_only.safetensors", False, True)[0],
        "random": _write_lora(tiny, d / "random.safetensors", True, True)[0],
    }


def _cfg(tiny, **kw) -> DiffusionConfig:
    """Pinned to the CPU in float32 (see the module docstring): the exactness tests hold bit for bit there."""
    base = dict(model=str(tiny.model_dir), crop_size=64, steps=4, strength=0.5, prompt="a face",
                negative_prompt="blurry", device="cpu", dtype="float32")
    return DiffusionConfig(**{**base, **kw})


def _scene(h=72, w=88):
    """A synthetic face-like image (edges for canny), a soft elliptical face mask, 478 landmarks over it."""
    k = min(h, w) / 72  # drawn for 72 px, scaled for bigger scenes
    cx, cy = w // 2, h // 2

    def px(v):
        return int(round(v * k))

    img = np.full((h, w, 3), (70, 110, 150), np.uint8)
    cv2.ellipse(img, (cx, cy), (px(22), px(28)), 0, 0, 360, (200, 160, 130), -1)
    for dx in (-9, 9):
        cv2.circle(img, (cx + px(dx), cy - px(6)), px(3), (40, 30, 30), -1)
    cv2.ellipse(img, (cx, cy + px(12)), (px(9), px(3)), 0, 0, 360, (150, 60, 60), -1)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (cx, cy), (px(22), px(28)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 2 * k) * (mask > 0)
    canon = np.array(json.loads((ROOT / "aufx/assets/canonical_face.json").read_text())["vertices"])[:, :2]
    landmarks = canon * 18 * k + (cx, cy)
    return img, mask, landmarks


# --- loading and cache --------------------------------------------------------------------------------------------


def test_pipeline_is_loaded_once_and_reused(tiny):
    CACHE.clear()
    hits, misses = CACHE.hits, CACHE.misses
    img, mask, _ = _scene()
    engine = DiffusionEngine(_cfg(tiny))
    engine.refine(img, mask, SMILE)
    engine.refine(img, mask, AUVector())
    DiffusionEngine(_cfg(tiny)).refine(img, mask, SMILE)  # another engine, same settings
    assert (CACHE.misses - misses, CACHE.hits - hits) == (1, 2)
    rel = os.path.relpath(tiny.model_dir)  # another spelling of the same folder
    assert get_pipeline(_cfg(tiny)) is get_pipeline(_cfg(tiny, model=rel))
    assert get_pipeline(_cfg(tiny)) is not get_pipeline(_cfg(tiny, controlnet_path=str(tiny.controlnet_dir)))


def test_a_stimulus_build_loads_the_pipeline_once(tiny, tmp_path, monkeypatch, astronaut, grace):
    """A batch tool (here the stimulus builder: 2 identities x 2 conditions x 2 intensities) loads the pipeline once
    per run, not once per image or per identity: engines are shared per process (aufx.engines.registry) and the
    pipeline is cached by its settings (loading.CACHE)."""
    from PIL import Image

    from aufx.diffusion import loading
    from aufx.study.stimuli import build_stimuli
    from aufx.study.stimulus_config import Condition, ConditionSet, StimulusConfig

    loads = []
    real = loading.load_pipeline
    monkeypatch.setattr(loading, "load_pipeline", lambda cfg, rt: loads.append(cfg.model) or real(cfg, rt))
    CACHE.clear()
    faces = tmp_path / "faces"
    faces.mkdir()
    Image.fromarray(astronaut).save(faces / "astronaut.png")
    Image.fromarray(grace).save(faces / "grace_hopper.png")
    conditions = ConditionSet((Condition("happy", "happy"), Condition("smile", aus="AU12:0.8")), (0.5, 1.0),
                              ("diffusion",))
    summary = build_stimuli(StimulusConfig(faces, conditions, tmp_path / "out", size=64, measure_output=False,
                                           identity_backend=None, diffusion=_cfg(tiny)))
    assert summary.rendered == 8 and not summary.failed
    assert loads == [str(tiny.model_dir)]


def test_compile_flag_compiles_the_unet_in_its_own_cache_entry(tiny):
    # Compiling happens on the first call (about 80 s for the tiny UNet on one core), so only the wiring is checked.
    compiled = get_pipeline(_cfg(tiny, compile=True))
    assert isinstance(compiled.pipe.unet, torch._dynamo.eval_frame.OptimizedModule)
    assert not isinstance(get_pipeline(_cfg(tiny)).pipe.unet, torch._dynamo.eval_frame.OptimizedModule)


def test_speed_options_give_the_same_image_on_the_cpu(tiny, tmp_path):
    """channels-last and the classic attention kernel change how, not what, is computed: the sums run in another
    order, so float32 rounding may move a pixel across a rounding boundary of the uint8 output (1 grey level), no
    more. The tiny autoencoder replaces the VAE through its own loading path (random weights: a different image)."""
    img, mask, _ = _scene()
    plain = DiffusionEngine(_cfg(tiny)).refine(img, mask, SMILE, seed=4).astype(int)
    for option in ({"channels_last": True}, {"attention": "classic"}):
        engine = DiffusionEngine(_cfg(tiny, **option))
        diff = np.abs(engine.refine(img, mask, SMILE, seed=4) - plain)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, option
    unet = get_pipeline(_cfg(tiny, channels_last=True)).pipe.unet
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    processors = get_pipeline(_cfg(tiny, attention="classic")).pipe.unet.attn_processors.values()
    assert {type(p).__name__ for p in processors} == {"AttnProcessor"}
    taesd = save_tiny_autoencoder(tmp_path)
    engine = DiffusionEngine(_cfg(tiny, tiny_vae_path=str(taesd)))
    out = engine.refine(img, mask, SMILE, seed=4)
    assert type(get_pipeline(engine.config).pipe.vae).__name__ == "AutoencoderTiny"
    assert np.array_equal(out[mask == 0], img[mask == 0]) and np.abs(out - plain).max() > 10
    assert engine.params()["tiny_vae_path"] == str(taesd)
    with pytest.raises(ModelUnavailable, match="hf download madebyollin/taesd"):
        get_pipeline(_cfg(tiny, tiny_vae_path=str(tmp_path / "absent")))


def test_fp16_on_cpu_falls_back_to_fp32_with_a_logged_note(tiny, caplog):
    rt = resolve_runtime("cpu", "float16")
    assert (rt.device, rt.dtype) == ("cpu", "float32") and "float16" in rt.note
    assert resolve_runtime("cpu", "auto").dtype == "float32"
    CACHE.clear()
    engine = DiffusionEngine(_cfg(tiny, device="cpu", dtype="float16"))
    img, mask, _ = _scene()
    with caplog.at_level(logging.WARNING, logger="aufx.diffusion.loading"):
        assert engine.refine(img, mask, SMILE).shape == img.shape
    assert rt.note in caplog.text
    params = engine.params()
    assert params["dtype"] == "float32" and "float16" in params["runtime_note"]
    assert get_pipeline(engine.config).pipe.unet.dtype == torch.float32
    json.dumps(params)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_request_without_gpu_is_a_clear_error():
    with pytest.raises(EngineUnavailable, match="no CUDA GPU"):
        resolve_runtime("cuda", "auto")


def test_missing_weights_say_what_to_fetch(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    img, mask, _ = _scene()
    with pytest.raises(ModelUnavailable, match="model_index.json") as empty:
        DiffusionEngine(DiffusionConfig(model=str(tmp_path))).refine(img, mask, SMILE)
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5" in str(empty.value)
    with pytest.raises(ModelUnavailable) as hub:
        get_pipeline(DiffusionConfig(model="aufx-tests/no-such-model"))
    msg = str(hub.value)
    assert "hf download aufx-tests/no-such-model --local-dir models/no-such-model" in msg
    assert "HF_HUB_OFFLINE" in msg and "warp engine still works" in msg
    with pytest.raises(ModelUnavailable, match="does not exist"):
        get_pipeline(DiffusionConfig(model=str(tmp_path / "absent")))
    with pytest.raises(ModelUnavailable, match="LoRA file .* not found"):
        get_pipeline(_cfg(tiny, lora_path=str(tmp_path / "none.safetensors")))
    with pytest.raises(ModelUnavailable, match="ControlNet folder .* has no config.json"):
        get_pipeline(_cfg(tiny, controlnet_path=str(tmp_path)))


# --- exactness against plain diffusers ----------------------------------------------------------------------------


def _plain_img2img(tiny, cfg, crop, seed):
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny.model_dir, safety_checker=None, feature_extractor=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt=cfg.prompt, negative_prompt=cfg.negative_prompt, image=Image.fromarray(crop),
                strength=cfg.strength, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="np").images[0]


@pytest.fixture(scope="module")
def crop_and_plain(tiny):
    img, mask, _ = _scene()
    box = region.face_box(mask, 0.15)
    crop = region.extract(img, box, 64)
    return crop, _plain_img2img(tiny, _cfg(tiny), crop, seed=7)


@pytest.mark.parametrize("lora", [None, "fresh", "encoder_only"])
def test_zero_aus_reproduce_plain_img2img_exactly(tiny, loras, crop_and_plain, lora):
    crop, plain = crop_and_plain
    cfg = _cfg(tiny, lora_path=str(loras[lora]) if lora else None)
    ours = generate(get_pipeline(cfg), cfg, crop, AUVector(), seed=7)
    assert np.array_equal(ours, plain)


def test_refine_of_a_whole_image_face_is_plain_img2img(tiny, loras):
    """End to end: a 64 px image that is all face goes through crop, model and blend unchanged by AUFX."""
    img, _, _ = _scene(64, 64)
    mask = np.ones((64, 64), np.float32)
    cfg = _cfg(tiny, crop_margin=0.0, lora_path=str(loras["fresh"]))
    out = DiffusionEngine(cfg).refine(img, mask, SMILE, seed=11)
    plain = _plain_img2img(tiny, cfg, img, seed=11)
    assert np.array_equal(out, np.rint(plain * 255).astype(np.uint8))


def test_fresh_encoder_contributes_nothing_for_any_aus(tiny, loras, crop_and_plain):
    crop, plain = crop_and_plain
    cfg = _cfg(tiny, lora_path=str(loras["fresh"]))
    assert np.array_equal(generate(get_pipeline(cfg), cfg, crop, SMILE, seed=7), plain)


def test_au_tokens_change_the_output(tiny, loras, crop_and_plain):
    crop, plain = crop_and_plain
    cfg = _cfg(tiny, lora_path=str(loras["encoder_only"]))  # zero LoRA: any change comes from the AU tokens
    loaded = get_pipeline(cfg)
    smile = generate(loaded, cfg, crop, SMILE, seed=7)
    wink = generate(loaded, cfg, crop, AUVector({"L45": 1.0}), seed=7)
    assert np.abs(smile - plain).max() > 1e-3
    assert np.abs(smile - wink).max() > 1e-3


def test_append_au_tokens_drops_zero_tokens():
    embeds = torch.randn(2, 77, 8)
    assert append_au_tokens(embeds, torch.zeros(1, 4, 8)) is embeds
    tokens = torch.zeros(1, 4, 8)
    tokens[0, 1] = 1.0
    tokens[0, 3, 2] = -2.0
    out = append_au_tokens(embeds, tokens)
    assert out.shape == (2, 79, 8)
    assert torch.equal(out[:, :77], embeds) and torch.equal(out[1, 77:], tokens[0, [1, 3]])


def test_au_encoder_is_zero_at_neutral_and_fresh():
    enc = AUEncoder(channels(), n_tokens=4, token_dim=8, hidden=16)
    smile = enc.vectorize(SMILE)
    assert smile.shape == (1, len(channels())) and smile[0, channels().index("L12")] == pytest.approx(0.8)
    assert not enc(smile).any()  # zero output projection
    torch.nn.init.normal_(enc.net[2].weight)
    assert not enc(enc.vectorize(AUVector())).any()  # no biases, SiLU(0) = 0
    assert enc(smile).abs().amax() > 0


def test_training_form_matches_inference_and_trains_a_fresh_encoder(tiny):
    unet = _unet(tiny).requires_grad_(False)
    enc = AUEncoder(channels(), n_tokens=4, token_dim=unet.config.cross_attention_dim, hidden=16)
    au = torch.cat([enc.vectorize(AUVector()), enc.vectorize(SMILE)])  # a neutral and a smiling sample
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, generator=gen)
    latents = torch.randn(2, 4, 16, 16, generator=gen)
    states, mask = training_conditioning(text, enc(au), au)
    assert states.shape == (2, 81, text.shape[2]) and mask[0, 77:].sum() == 0 and mask[1].sum() == 81
    out = unet(latents, 500, encoder_hidden_states=states, encoder_attention_mask=mask).sample
    text_only = unet(latents[:1], 500, encoder_hidden_states=text[:1]).sample
    assert torch.allclose(out[:1], text_only, atol=1e-5)  # neutral sample: as at inference (tokens dropped)
    out[1].square().mean().backward()
    assert enc.net[2].weight.grad.abs().sum() > 0  # the zero-initialised projection learns from step one


# --- LoRA file ----------------------------------------------------------------------------------------------------


def test_lora_file_round_trips_bit_exactly(tiny, tmp_path):
    from peft.utils import get_peft_model_state_dict

    path, unet, encoder = _write_lora(tiny, tmp_path / "au_lora.safetensors", True, True, seed=3)
    fresh = _unet(tiny)
    loaded_encoder = load_lora(path, fresh)
    want = get_peft_model_state_dict(unet, adapter_name="aufx")
    got = get_peft_model_state_dict(fresh, adapter_name="aufx")
    assert want.keys() == got.keys() and len(want) > 0
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert encoder.state_dict().keys() == loaded_encoder.state_dict().keys()
    assert all(torch.equal(v, loaded_encoder.state_dict()[k]) for k, v in encoder.state_dict().items())
    assert loaded_encoder.config() == encoder.config()
    meta = read_metadata(path)
    assert (meta["rank"], meta["alpha"], meta["base_model"], meta["note"]) == ("4", "4.0", "tiny-random", "test")
    assert json.loads(meta["target_modules"]) == sorted(LoraSpec().target_modules)


def test_lora_file_errors_name_the_problem(tiny, tmp_path, loras):
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(LoraFileError, match="not an AUFX LoRA file"):
        load_lora(tmp_path / "other.safetensors", _unet(tiny))
    wider = UNet2DConditionModel(**{**TINY_UNET, "cross_attention_dim": 48})
    with pytest.raises(LoraFileError, match="48 wide"):
        load_lora(loras["random"], wider)


# --- the face region ----------------------------------------------------------------------------------------------


def test_pixels_outside_the_mask_are_unchanged(tiny):
    img, mask, _ = _scene()
    out = DiffusionEngine(_cfg(tiny)).refine(img, mask, SMILE, seed=1)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out[mask == 0], img[mask == 0])
    assert (out[mask > 0.5] != img[mask > 0.5]).any()


def test_mask_at_the_image_border_and_empty_mask(tiny):
    img, mask, _ = _scene()
    shifted = np.zeros_like(mask)
    shifted[:, :30] = mask[:, 29:59]  # face cut by the left border: the crop box reaches past the image
    box = region.face_box(shifted, 0.15)
    assert box.side > img.shape[0] and box.y0 < 0  # taller than the image: edge pixels fill the rest
    out = DiffusionEngine(_cfg(tiny)).refine(img, shifted, SMILE)
    assert np.array_equal(out[shifted == 0], img[shifted == 0]) and (out[shifted > 0.5] != img[shifted > 0.5]).any()
    empty = DiffusionEngine(_cfg(tiny)).refine(img, np.zeros_like(mask), SMILE)
    assert np.array_equal(empty, img) and empty is not img


def test_crop_geometry():
    mask = np.zeros((100, 200), np.float32)
    mask[40:60, 150:190] = 1.0
    box = region.face_box(mask, 0.25)
    assert box.side == 60 and box.y0 == 20 and box.x0 == 140  # 40 px wide + 2 x 25 %, kept inside the image
    corners = region.to_crop(np.array([[140, 20], [200, 80]]), box, 64)
    assert np.allclose(corners, [[0, 0], [64, 64]])
    w = region.blend_weights(mask, box, feather=0.1)
    assert w.max() == 1.0 and (w[mask[20:80, 140:200] == 0] == 0).all() and 0 < w[0 + 20, 10 + 1] < 1


# --- seeds --------------------------------------------------------------------------------------------------------


def test_seed_makes_edits_reproducible(tiny):
    img, mask, _ = _scene()
    engine = DiffusionEngine(_cfg(tiny, seed=5))
    a = engine.refine(img, mask, SMILE, seed=1)
    assert np.array_equal(a, engine.refine(img, mask, SMILE, seed=1))
    assert not np.array_equal(a, engine.refine(img, mask, SMILE, seed=2))
    assert np.array_equal(engine.refine(img, mask, SMILE), engine.refine(img, mask, SMILE, seed=5))
    assert engine.params()["seed"] == 5
    engine.refine(img, mask, SMILE, seed=9)
    assert engine.params()["seed"] == 9  # the sidecar records the seed the edit used


# --- ControlNet ---------------------------------------------------------------------------------------------------


def test_controlnet_mesh_and_canny_condition_the_output(tiny):
    img, mask, landmarks = _scene()
    plain = DiffusionEngine(_cfg(tiny)).refine(img, mask, SMILE, seed=3)
    mesh = DiffusionEngine(_cfg(tiny, controlnet_path=str(tiny.controlnet_dir), cond="mesh"))
    canny = DiffusionEngine(_cfg(tiny, controlnet_path=str(tiny.controlnet_dir), cond="canny"))
    with_mesh = mesh.refine(img, mask, SMILE, target_landmarks_px=landmarks, seed=3)
    moved = landmarks.copy()
    moved[:, 1] += 4.0
    with_moved_mesh = mesh.refine(img, mask, SMILE, target_landmarks_px=moved, seed=3)
    with_canny = canny.refine(img, mask, SMILE, seed=3)
    for out in (with_mesh, with_canny):
        assert not np.array_equal(out, plain)
        assert np.array_equal(out[mask == 0], img[mask == 0])
    assert not np.array_equal(with_mesh, with_moved_mesh)
    assert not np.array_equal(with_mesh, with_canny)
    with pytest.raises(ValueError, match="target landmarks"):
        mesh.refine(img, mask, SMILE)


def test_condition_images():
    _, _, landmarks = _scene()
    drawing = draw_mesh(landmarks - landmarks.min(axis=0) + 4, 64)
    assert drawing.shape == (64, 64, 3) and drawing.dtype == np.uint8
    r, g, b = drawing.reshape(-1, 3).astype(int).T
    assert ((r > g + 60) & (r > b + 60)).sum() > 10  # lips are drawn in their own colour (red)
    assert ((r == g) & (g == b) & (r > 0) & (r < 128)).any()  # grey tessellation
    without_iris = draw_mesh(landmarks[:468] - landmarks.min(axis=0) + 4, 64)
    assert not np.array_equal(drawing, without_iris)
    square = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], float)
    lines = draw_mesh(square, 64, edges=np.array([[0, 1], [1, 2], [2, 3], [3, 0]]))
    assert lines[10, 30].max() > 0 and lines[30, 30].max() == 0
    img, _, _ = _scene()
    edges = canny_edges(img)
    assert edges.shape == img.shape and set(np.unique(edges)) == {0, 255}


# --- few-step mode ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lcm_lora_dir(tiny, tmp_path_factory):
    """A LoRA in diffusers' format (as LCM-LoRA is published), random so that fusing it is visible."""
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    unet = _unet(tiny)
    attach_lora(unet, LoraSpec(rank=4, alpha=4.0))
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    d = tmp_path_factory.mktemp("lcm")
    StableDiffusionPipeline.save_lora_weights(d, unet_lora_layers=get_peft_model_state_dict(unet, adapter_name="aufx"))
    return d


def test_few_step_mode_with_and_without_lcm_lora(tiny, loras, lcm_lora_dir):
    img, mask, _ = _scene()
    full = DiffusionEngine(_cfg(tiny, steps=4))
    dpm = DiffusionEngine(_cfg(tiny, steps=4, few_step=True, few_step_steps=2, strength=0.5))
    lcm = DiffusionEngine(_cfg(tiny, few_step=True, few_step_steps=2, lcm_lora_path=str(lcm_lora_dir),
                               lora_path=str(loras["random"])))
    a, b, c = (e.refine(img, mask, SMILE, seed=0) for e in (full, dpm, lcm))
    assert full.params()["scheduler"] == "PNDMScheduler"
    assert dpm.params()["scheduler"] == "DPMSolverMultistepScheduler" and dpm.params()["denoising_steps"] == 1
    assert lcm.params()["scheduler"] == "LCMScheduler" and lcm.params()["guidance_scale_used"] == 1.0
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    base_q = get_pipeline(full.config).pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    lcm_q = get_pipeline(lcm.config).pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert not torch.equal(base_q.weight, lcm_q.base_layer.weight)  # LCM-LoRA fused; the AUFX LoRA stays separate
    assert "aufx" in lcm_q.lora_A and "lcm" not in lcm_q.lora_A
    json.dumps(lcm.params())


# --- configuration and CLI ----------------------------------------------------------------------------------------


def test_cli_flags_build_the_config():
    parser = add_diffusion_args(argparse.ArgumentParser())
    assert config_from_args(parser.parse_args([])) == DiffusionConfig()
    args = parser.parse_args(["--strength", "0.5", "--guidance_scale", "5", "--lora_path", "a.safetensors",
                              "--controlnet_path", "cn", "--cond", "canny", "--seed", "3", "--model", "m",
                              "--steps", "30", "--few_step"])
    cfg = config_from_args(args)
    assert (cfg.strength, cfg.guidance_scale, cfg.lora_path, cfg.controlnet_path, cfg.cond, cfg.seed, cfg.model,
            cfg.steps, cfg.few_step) == (0.5, 5.0, "a.safetensors", "cn", "canny", 3, "m", 30, True)
    assert cfg.active_steps == cfg.few_step_steps == 4
    with pytest.raises(SystemExit):
        parser.parse_args(["--cond", "depth"])
    edit = argparse.ArgumentParser()
    edit.add_argument("--seed", type=int, default=None, help="the caller's own flag")
    add_diffusion_args(edit)  # no clash: the caller's --seed feeds the config
    assert config_from_args(edit.parse_args(["--seed", "9"])).seed == 9
    with pytest.raises(ValueError, match="no denoising step"):
        DiffusionConfig(steps=2, strength=0.3)


def test_diffusion_engine_refines_the_warp_behind_the_engine_interface(tiny, grace, tmp_path):
    """Editor, CLI and a hand-made warp-then-refine give the same bytes; the request's seed is the edit's seed."""
    from PIL import Image

    from aufx.cli import main
    from aufx.engines.diffusion import face_mask
    from aufx.engines.warp import WarpEngine
    from aufx.model.deform import deform
    from aufx.pipeline import run
    from aufx.request import EditRequest

    request = EditRequest(grace, name="grace", au_text="AU12:0.8", engine="diffusion",
                          engine_options={"config": _cfg(tiny)}, seed=3, measure=False)
    editor, result = run(request)
    face, target = editor.face(0), result.target
    d = deform(face, target)
    by_hand = DiffusionEngine(_cfg(tiny)).refine(WarpEngine().render(grace, face, target, d), face_mask(face, d),
                                                 target, d.target_landmarks, seed=3)
    assert np.array_equal(result.image, by_hand) and not np.array_equal(result.image, grace)
    meta = request.describe(result)
    assert meta["engine"] == "diffusion" and meta["engine_params"]["seed"] == meta["seed"] == 3
    src = tmp_path / "grace.png"
    Image.fromarray(grace).save(src)
    flags = ["--model", str(tiny.model_dir), "--crop_size", "64", "--steps", "4", "--strength", "0.5",
             "--prompt", "a face", "--negative_prompt", "blurry", "--device", "cpu", "--dtype", "float32"]
    assert main(["edit", "-i", str(src), "-o", str(tmp_path / "out.png"), "--au", "AU12:0.8", "--engine",
                 "diffusion", "--seed", "3", "--no-measure", *flags]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), by_hand)


def test_engine_module_does_not_import_torch():
    code = ("import sys, aufx.engines.diffusion, aufx.diffusion.loading; "
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- real weights -------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_sd15_refines_a_face_on_gpu():
    cfg = DiffusionConfig(model=os.environ.get("AUFX_SD15_MODEL", DiffusionConfig.model))
    try:
        loaded = get_pipeline(cfg)
    except ModelUnavailable as e:
        pytest.skip(f"SD1.5 weights not present: {str(e).splitlines()[0]}")
    assert loaded.runtime.dtype == "float16" and loaded.pipe.unet.dtype == torch.float16
    img, mask, _ = _scene(h=360, w=440)
    out = DiffusionEngine(cfg).refine(img, mask, SMILE, seed=0)
    assert np.array_equal(out[mask == 0], img[mask == 0])
    inside = out[mask > 0.5].astype(int)
    assert 10 < inside.mean() < 245 and inside.std() > 2  # a picture, not a black (NaN) or flat patch
