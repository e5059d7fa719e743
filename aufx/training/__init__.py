"""Training: annotations from OpenFace output, face alignment, the AU regressor, and the diffusion engine's AU LoRA
(see training/README.md)."""
