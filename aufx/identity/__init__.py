"""Face identity for losses and evaluation: dlib's ResNet face descriptor re-implemented in torch
(:mod:`aufx.identity.dlib_resnet`), the dlib face chip as a differentiable crop (:mod:`aufx.identity.chip`), where
the model files are (:mod:`aufx.identity.models`). Only dlib_resnet imports torch (chip.py on extraction).
"""
