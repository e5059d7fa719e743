"""The AU model, below the engines: the deformation basis (basis.py), from target AUs to target landmarks
(deform.py, gains.py), and measuring AUs (estimate.py, regressor*.py, calibration.py); emotion presets (presets.py)."""
