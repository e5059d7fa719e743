"""Train the diffusion engine's AU-conditioned LoRA (UNet attention LoRA + AU encoder) on AU-annotated face crops.

    accelerate launch -m aufx.training.train --config aufx/training/configs/train_sd15_lora.yaml \
        --train_csv data/aligned/annotations.csv --img_root data/aligned --au_regressor runs/au_lora
    python -m aufx.training.train ...            # the same on one process

Loss = noise loss + lambda_au * AU loss + lambda_id * identity loss + lambda_lpips * perceptual loss, the last three
on the VAE-decoded clean-image prediction x0 of low-noise samples (aufx/training/losses.py: which models, and fallbacks). Output in ``output_dir``: ``lora_unet.safetensors``
(what the engine's ``--lora_path`` loads), ``run_card.json`` + ``README.md``, ``train_config.yaml``,
``history.jsonl`` (losses per step), ``checkpoints/`` (``--resume`` continues from them) and ``logs/`` (TensorBoard).
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from aufx.diffusion.errors import EngineUnavailable
from aufx.diffusion.lora_io import LoraSpec, save_lora
from aufx.training import checkpoint
from aufx.training.au_regressor import CONFIG as REGRESSOR_CONFIG
from aufx.training.au_regressor import WEIGHTS as REGRESSOR_WEIGHTS
from aufx.training.base_model import load_base
from aufx.training.config import TrainConfig, from_args, save_yaml
from aufx.training.data import EpochSampler, FaceDataset, balanced_weights, read_annotations
from aufx.training.ema import EMA
from aufx.training.losses import ImageLosses, build_image_losses, noise_target, predict_x0
from aufx.training.model import AUDenoiser
from aufx.io.digest import sha256_file
from aufx.training.run_card import final_losses, write_run_card

LORA_FILE = "lora_unet.safetensors"
log = logging.getLogger("aufx.training.train")


def resolve_precision(requested: str, cpu: bool = False) -> tuple[str, str]:
    """(precision accelerate gets, note): fp16/bf16 need a GPU here; on a CPU the run uses fp32 and says so."""
    if requested == "no" or (torch.cuda.is_available() and not cpu):
        return requested, ""
    why = "--cpu is set" if torch.cuda.is_available() else "there is no CUDA GPU"
    return "no", f"mixed_precision {requested} needs a CUDA GPU ({why}); this run trains in fp32 on the CPU"


def _tracker_config(cfg: TrainConfig) -> dict:
    """TensorBoard hparams accept only scalars and strings."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else "none" if v is None else v
            for k, v in cfg.to_dict().items()}


class _History:
    """``history.jsonl``: one line of losses per optimiser step (main process); a resume cuts lines past its step."""

    def __init__(self, path: Path, start_step: int, enabled: bool):
        self.path, self.enabled = path, enabled
        self.rows = []
        if enabled and path.is_file():
            self.rows = [r for r in map(json.loads, path.read_text().splitlines()) if r["step"] <= start_step]
        if enabled:
            path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def add(self, row: dict) -> None:
        if self.enabled:
            self.rows.append(row)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


class _LossMeter:
    """Per-step means of the loss terms over micro-batches and processes, with one collective per micro-batch:
    every process sends every term (a term it lacks, e.g. no low-noise sample for the image losses, counts 0 times),
    so no process ever waits on a collective another one skipped."""

    def __init__(self, names: list[str]):
        self.names = names
        self.sums = dict.fromkeys(names, 0.0)
        self.counts = dict.fromkeys(names, 0.0)

    def add(self, accelerator, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        values = [loss, *(terms.get(k, loss.new_zeros(())) for k in self.names[1:])]
        present = [1.0] + [float(k in terms) for k in self.names[1:]]
        totals = accelerator.reduce(torch.cat([torch.stack([v.detach().float() for v in values]),
                                               torch.tensor(present, device=loss.device)]), "sum").tolist()
        n = len(self.names)
        for k, total, seen in zip(self.names, totals[:n], totals[n:]):
            self.sums[k] += total
            self.counts[k] += seen

    def pop(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.names if self.counts[k]}
        self.sums, self.counts = dict.fromkeys(self.names, 0.0), dict.fromkeys(self.names, 0.0)
        return out


class _Speed:
    """Optimiser-step durations with checkpoint saves left out; the first ``warmup`` steps (CUDA and cuDNN set-up,
    compilation, allocator growth) are reported apart, so steps/s describes the run's steady pace."""

    def __init__(self, warmup: int):
        self.warmup, self.durations = warmup, []
        self.restart()

    def restart(self) -> None:
        self.t0 = time.perf_counter()

    def step(self) -> None:
        now = time.perf_counter()
        self.durations.append(now - self.t0)
        self.t0 = now

    def summary(self, images_per_step: int, device) -> dict:
        skip = min(self.warmup, max(0, len(self.durations) - 1))  # a run shorter than the warm-up keeps its last
        timed = self.durations[skip:]
        rate = len(timed) / max(sum(timed), 1e-9)
        peak = None
        if torch.device(device).type == "cuda":
            peak = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        return {"steps_per_second": round(rate, 4), "images_per_second": round(rate * images_per_step, 3),
                "timed_steps": len(timed), "warmup_steps": skip,
                "first_step_seconds": round(self.durations[0], 3) if self.durations else None,
                "peak_gpu_memory_gib": peak}


@dataclass
class _Frozen:
    """Everything a step needs besides the trained model: frozen VAE, noise schedule, image losses, embeddings."""

    vae: torch.nn.Module
    latent_scale: float
    noise_scheduler: object
    losses: ImageLosses
    prompt_embeds: torch.Tensor
    empty_embeds: torch.Tensor
    dtype: torch.dtype


def _data(cfg: TrainConfig, accelerator, warn):
    """The annotation table, its sampler and DataLoader; prints the data and class counts."""
    from torch.utils.data import DataLoader

    table = read_annotations(cfg.train_csv, cfg.img_root, cfg.au_keys, cfg.label_column)
    if table.missing_images:
        warn(f"{len(table.missing_images)} of {table.rows_in_csv} images in {cfg.train_csv} are missing and left out, "
             f"e.g. {table.missing_images[0]}")
    if len(table) < cfg.batch_size:
        raise ValueError(f"{cfg.train_csv}: {len(table)} usable images, fewer than one batch ({cfg.batch_size})")
    weights = None
    if cfg.balance:
        if table.labels is None:
            raise ValueError(f"--balance needs an emotion column {cfg.label_column!r} in {cfg.train_csv}")
        weights = balanced_weights(table.labels)
    if table.labels is not None:
        accelerator.print(f"class counts ({cfg.label_column}; {'balanced' if cfg.balance else 'as found'}): "
                          + ", ".join(f"{k} {v}" for k, v in table.class_counts().items()))
    accelerator.print(f"data: {len(table)} images from {cfg.train_csv}")
    sampler = EpochSampler(len(table), cfg.seed, weights)
    # its own generator: making an epoch's iterator must not draw from the global (checkpointed) RNG
    loader = DataLoader(FaceDataset(table, cfg.resolution), batch_size=cfg.batch_size, sampler=sampler,
                        num_workers=cfg.num_workers, drop_last=True, pin_memory=torch.cuda.is_available(),
                        persistent_workers=cfg.num_workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
    return table, sampler, loader


def _models(cfg: TrainConfig, precision: str, device, warn) -> tuple[AUDenoiser, _Frozen]:
    """The trained model (UNet + LoRA + AU encoder) and the frozen parts, cast for mixed precision."""
    base = load_base(cfg.pretrained_model, cfg.prompt, cfg.allow_download)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    model = AUDenoiser(base.unet, cfg.au_keys, LoraSpec(cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets),
                       cfg.au_tokens, cfg.au_hidden)
    vae = base.vae.to(device)
    if dtype != torch.float32:  # frozen base in half precision, trained weights in fp32
        model.unet.to(dtype)
        vae.to(dtype)
        for p in model.trainable().values():
            p.data = p.data.float()
    if cfg.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        vae.enable_gradient_checkpointing()
    losses = build_image_losses(cfg.lambda_au, cfg.lambda_id, cfg.lambda_lpips, cfg.au_regressor, cfg.au_keys,
                                warn).to(device)
    return model, _Frozen(vae, base.latent_scale, base.noise_scheduler, losses,
                          base.prompt_embeds.to(device, dtype), base.empty_embeds.to(device, dtype), dtype)


def _resume(cfg: TrainConfig, accelerator, ckpt_root: Path, ema: EMA | None, data_position: dict, warn):
    """(start step, checkpoint resumed from or None); refuses to mix a fresh run with old checkpoints."""
    existing = checkpoint.list_checkpoints(ckpt_root)
    if not cfg.resume:
        if existing:
            raise ValueError(f"{ckpt_root} already holds checkpoints (newest {existing[-1][1].name}); pass --resume "
                             "to continue that run, or choose another --output_dir")
        return 0, None
    path = checkpoint.resolve_resume(cfg.resume, ckpt_root)
    state = checkpoint.load_checkpoint(accelerator, path, ema)
    step = state["step"]
    newer = [p.name for s, p in existing if s > step]
    if newer:
        raise ValueError(f"{ckpt_root} holds checkpoints past step {step} ({', '.join(newer)}); continuing from an "
                         "older one here would mix two runs: resume into another --output_dir")
    if state.get("data_position") != data_position:
        warn(f"data layout changed since {path} ({state.get('data_position')} -> {data_position}): training "
             "continues, but not on exactly the batches an uninterrupted run would have seen")
    accelerator.print(f"resumed from {path} at step {step}")
    return step, path


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Run (or continue) a training run; returns the run card (on the main process)."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
    from tqdm import tqdm

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    precision, precision_note = resolve_precision(cfg.mixed_precision, cfg.cpu)
    accelerator = Accelerator(
        cpu=cfg.cpu, mixed_precision=precision, log_with=cfg.report_to,
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=cfg.grad_accum, sync_with_dataloader=False),
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")))
    main = accelerator.is_main_process

    def warn(message: str) -> None:
        if main:
            log.warning(message)

    if precision_note:
        warn(precision_note)
    set_seed(cfg.seed)
    table, sampler, loader = _data(cfg, accelerator, warn)
    model, frozen = _models(cfg, precision, accelerator.device, warn)
    optimizer = torch.optim.AdamW(list(model.trainable().values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = cfg.lr_warmup_steps * accelerator.num_processes  # accelerate steps the schedule once per process
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    model, optimizer, loader, lr_schedule = accelerator.prepare(model, optimizer, loader, lr_schedule)
    trained = accelerator.unwrap_model(model)
    params = list(trained.trainable().values())
    ema = EMA(trained.trainable(), cfg.ema_decay) if cfg.ema else None
    checkpoint.register_hooks(accelerator, model)

    ckpt_root = out / "checkpoints"
    data_position = {"batches_per_epoch": len(loader), "grad_accum": cfg.grad_accum,
                     "num_processes": accelerator.num_processes, "batch_size": cfg.batch_size}
    start_step, resumed_from = _resume(cfg, accelerator, ckpt_root, ema, data_position, warn)
    status = frozen.losses.status
    if main:
        save_yaml(cfg, out / "train_config.yaml")
        _note_losses_off(out / "train_config.yaml", status)
        if status["au"].active and Path(cfg.au_regressor).resolve() != out.resolve():
            for name in (REGRESSOR_WEIGHTS, REGRESSOR_CONFIG):  # keep the regressor beside the LoRA it trained
                shutil.copy2(Path(cfg.au_regressor) / name, out / name)
    if cfg.report_to:
        accelerator.init_trackers("aufx_lora", config=_tracker_config(cfg))
    history = _History(out / "history.jsonl", start_step, main)

    weights_of = {name: s.weight for name, s in status.items() if s.active}
    meter = _LossMeter(["loss", *weights_of])
    step = start_step
    epoch, skip = divmod(start_step * cfg.grad_accum, len(loader))
    bar = tqdm(total=cfg.max_steps, initial=start_step, desc="train", disable=not (main and progress))
    speed = _Speed(cfg.speed_warmup_steps)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(accelerator.device)
    while step < cfg.max_steps:
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        for batch in (accelerator.skip_first_batches(loader, skip) if skip else loader):
            with accelerator.accumulate(model):
                terms = _step_losses(batch, model, frozen, cfg)
                loss = sum(weights_of[k] * v for k, v in terms.items())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)
            meter.add(accelerator, loss, terms)
            if not accelerator.sync_gradients:
                continue
            step += 1
            speed.step()
            if ema is not None:
                ema.update()
            row = {"step": step, **meter.pop(), "lr": lr_schedule.get_last_lr()[0]}
            history.add(row)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                accelerator.log({f"loss/{k}" if k != "lr" else k: v for k, v in row.items() if k != "step"}, step=step)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.max_steps:
                checkpoint.save_checkpoint(accelerator, ckpt_root, step, ema, {"data_position": data_position},
                                           cfg.keep_checkpoints)
                speed.restart()
            if step >= cfg.max_steps:
                break
        epoch, skip = epoch + 1, 0
    bar.close()

    accelerator.wait_for_everyone()
    card = {}
    if main:
        images_per_step = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
        card = _export(cfg, out, trained, ema, status, table, precision, precision_note, accelerator, history.rows,
                       step, resumed_from, speed.summary(images_per_step, accelerator.device))
    accelerator.end_training()
    return card


def _step_losses(batch, model, frozen: _Frozen, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Unweighted loss terms of one micro-batch. All randomness comes from the (checkpointed) global generators."""
    pixels, au = batch["pixel_values"], batch["au"]
    n = pixels.shape[0]
    scheduler = frozen.noise_scheduler
    with torch.no_grad():
        if cfg.hflip:  # bilateral AU labels stay valid under a mirror
            flip = torch.rand(n, device=pixels.device) < 0.5
            pixels = torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)
        latents = frozen.vae.encode(pixels.to(frozen.dtype)).latent_dist.sample() * frozen.latent_scale
    noise = torch.randn_like(latents)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), device=latents.device)
    noisy = scheduler.add_noise(latents, noise, t)
    drop = torch.rand(n, device=latents.device) < cfg.text_dropout
    text = torch.where(drop[:, None, None], frozen.empty_embeds, frozen.prompt_embeds)
    pred = model(noisy, t, text, au)
    terms = {"noise": F.mse_loss(pred.float(), noise_target(scheduler, latents, noise, t).float())}
    if frozen.losses.any_active:
        idx = torch.nonzero(t <= cfg.aux_max_timestep).flatten()[:cfg.aux_samples]
        if len(idx):
            x0 = predict_x0(scheduler, noisy[idx], pred[idx], t[idx])
            images = frozen.vae.decode((x0 / frozen.latent_scale).to(frozen.dtype)).sample
            terms.update(frozen.losses(images, pixels[idx], au[idx]))
    return terms


def _note_losses_off(path: Path, status: dict) -> None:
    """Prepend the switched-off losses to the saved config as comments, so the config alone tells the story."""
    off = [f"# {name} loss OFF (lambda {s.weight:g}): {s.reason}" for name, s in status.items()
           if s.weight > 0 and not s.active]
    if off:
        path.write_text("\n".join(off) + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")


def _export(cfg, out, trained, ema, status, table, precision, precision_note, accelerator, history, step,
            resumed_from, speed: dict) -> dict:
    """Write the LoRA file (EMA weights when on) and the run card."""
    meta = {"aufx_train_steps": str(step), "aufx_train_csv": str(cfg.train_csv), "aufx_ema": str(cfg.ema),
            "aufx_au_keys": json.dumps(list(cfg.au_keys))}
    with ema.applied() if ema is not None else nullcontext():
        save_lora(out / LORA_FILE, trained.unet, trained.au_encoder, base_model=cfg.pretrained_model,
                  extra_metadata=meta)
    card = {
        "config": cfg.to_dict(),
        "resolved": {"mixed_precision": precision, "precision_note": precision_note,
                     "device": str(accelerator.device), "num_processes": accelerator.num_processes},
        "data": {**table.counts(), "sampler": "balanced" if cfg.balance else "uniform"},
        "losses": {name: s.to_dict() for name, s in status.items()},
        "losses_off": {name: s.reason for name, s in status.items() if s.weight > 0 and not s.active},
        "final_losses": final_losses(history),
        "steps": step,
        "resumed_from": str(resumed_from) if resumed_from else None,
        "steps_per_second": speed["steps_per_second"],  # steady pace: see "speed" for what was timed
        "speed": speed,
        "outputs": {"lora": LORA_FILE, "lora_sha256": sha256_file(out / LORA_FILE),
                    "weights": "EMA" if cfg.ema else "last",
                    "au_regressor": REGRESSOR_WEIGHTS if status["au"].active else None},
    }
    write_run_card(out, card)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code 0: trained; 2: bad settings, data or missing weights (the message says which)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        train(from_args(argv))
    except (EngineUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
