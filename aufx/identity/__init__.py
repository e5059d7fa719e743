"""Face identity for losses and evaluation: dlib's ResNet face descriptor re-implemented in torch
(:mod:`aufx.identity.dlib_resnet`) and the dlib face chip as a differentiable crop (:mod:`aufx.identity.chip`).

Importing this package does not import torch.
"""
