"""Developer tools run from the checkout: benchmarks (bench*.py), the outside-instrument fidelity report
(fidelity.py) and the render-gain calibration (calibrate.py). The evaluation library the app uses is aufx.evaluation."""
