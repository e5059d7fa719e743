import os

# Before numpy loads: OpenBLAS threads fight MediaPipe's on small machines (an estimate took 300+ ms instead of 2).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from aufx.cli import main  # noqa: E402

raise SystemExit(main())
