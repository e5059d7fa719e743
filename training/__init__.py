"""Training data and training scripts: annotations from OpenFace output (training.annotations), datasets, LoRA."""
