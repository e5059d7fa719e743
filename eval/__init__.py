"""AUFX evaluation: AU error, identity, LPIPS, PSNR/SSIM and emotion metrics over generated images, with reports.

Entry points: ``python -m eval.evaluate`` (command line), :func:`eval.evaluate.evaluate` (folders -> metrics dict),
:class:`eval.evaluate.Evaluator` (one source/output pair at a time, for the app). Model backends are listed with their
licences in ``eval/backends.json``.
"""
