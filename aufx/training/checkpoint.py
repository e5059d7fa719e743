"""Checkpoints: accelerate's save_state/load_state (optimiser, LR schedule, grad scaler, RNG of every process) plus
the trained weights, the EMA and a small JSON with the step, written atomically and rotated.

A checkpoint folder ``step_00001000`` only ever appears complete: it is written as ``.tmp-step_00001000`` and renamed
when everything is on disk, so a run killed while saving leaves a temp folder that resuming ignores (and the next
save of that step replaces). Only the trainable weights are stored (hooks replace accelerate's whole-model save),
so a SD1.5 rank-16 checkpoint is about 64 MB, not 3.4 GB.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from aufx.training.ema import EMA

STATE = "trainer_state.json"
WEIGHTS = "trainable.safetensors"
EMA_WEIGHTS = "ema.safetensors"
_NAME = re.compile(r"step_(\d+)")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _NAME.fullmatch(p.name)) and (p / STATE).is_file()]
    return sorted(found)


def resolve_resume(resume: str, checkpoints_root: Path) -> Path:
    """``"latest"`` -> the newest complete checkpoint; otherwise the given folder, which must be a checkpoint."""
    if resume == "latest":
        found = list_checkpoints(checkpoints_root)
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoints_root} (nothing to continue)")
        return found[-1][1]
    path = Path(resume)
    if not (path / STATE).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a checkpoint folder (no {STATE})")
    return path


def register_hooks(accelerator, model) -> None:
    """Make accelerate save and load only the trainable weights of ``model`` (LoRA + AU encoder)."""
    from safetensors.torch import load_file, save_file

    def save_hook(models, weights, output_dir):
        weights.clear()  # accelerate would otherwise write the whole UNet
        if accelerator.is_main_process:
            trainable = accelerator.unwrap_model(model).trainable()
            save_file({k: p.detach().contiguous().cpu() for k, p in trainable.items()}, str(Path(output_dir) / WEIGHTS))

    def load_hook(models, input_dir):
        models.clear()
        trainable = accelerator.unwrap_model(model).trainable()
        tensors = load_file(str(Path(input_dir) / WEIGHTS))
        if set(tensors) != set(trainable):
            raise ValueError(f"{input_dir}: checkpoint weights do not match this model (another LoRA rank, targets "
                             f"or AU keys?)")
        for k, p in trainable.items():
            p.data.copy_(tensors[k].to(p.device, p.dtype))

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def save_checkpoint(accelerator, root: Path, step: int, ema: EMA | None, info: dict, keep: int) -> Path:
    """Write the checkpoint of ``step`` atomically; keep the newest ``keep``. Call on every process."""
    from safetensors.torch import save_file

    final, tmp = root / checkpoint_name(step), root / f".tmp-{checkpoint_name(step)}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        state = {"step": step, **info}
        if ema is not None:
            tensors, state["ema"] = ema.state()
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp / EMA_WEIGHTS))
        (tmp / STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # an older run's checkpoint of the same step (resumed from an earlier one)
            shutil.rmtree(final)
        tmp.rename(final)
        for _, old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path, ema: EMA | None) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns the JSON state (step, data position...)."""
    from safetensors.torch import load_file

    accelerator.load_state(str(path))
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{path}: checkpoint has no EMA (trained with ema off); resume with --no-ema")
        ema.load(load_file(str(path / EMA_WEIGHTS)), state["ema"])
    return state
