"""Developer tools run from the checkout: refitting the built-in AU estimator against OpenFace
(fit_openface_estimator.py). The training library the app uses is aufx.training (see training/README.md)."""
