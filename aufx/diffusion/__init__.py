"""Diffusion refinement for the diffusion engine (aufx.engines.diffusion): config, loading and cache, AU encoder,
LoRA file, condition images, face-region crop/blend, sampling, and tiny random models for tests and benchmarks.

Importing this package or aufx.diffusion.config does not import torch; the other modules do, on first use.
"""
