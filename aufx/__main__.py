"""``python -m aufx ...`` and the ``aufx`` script of an install: the command line of aufx/cli.py."""
import os

# Before numpy loads: OpenBLAS threads fight MediaPipe's on small machines (an estimate took 300+ ms instead of 2).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def run() -> int:
    from aufx.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
