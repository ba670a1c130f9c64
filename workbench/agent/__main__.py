import sys

# numba's array maths looks for BLAS by importing scipy.linalg when it first compiles or
# loads a kernel (numba/np/arraymath.py, _check_blas); no kernel here uses BLAS, and in
# a TCG guest that import was 4 of the agent's 36 s to ready. An agent never uses scipy,
# so in its own process scipy is not importable and numba goes without BLAS.
sys.modules.setdefault("scipy", None)

from .main import main  # noqa: E402

sys.exit(main())
