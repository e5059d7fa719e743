"""AUFX evaluation: AU error, identity, LPIPS, PSNR/SSIM and emotion metrics over generated images, with reports.

Entry points: ``python -m aufx.evaluation.evaluate`` (command line), :func:`aufx.evaluation.evaluate.evaluate`
(folders -> metrics dict), :class:`aufx.evaluation.evaluate.Evaluator` (one source/output pair at a time, for the
app). Model backends are listed with their licences in ``aufx/evaluation/backends.json``.
"""
