"""Set the thread count for torch *and* the BLAS it calls. Import this module before torch.

Debian's python3-torch 1.13 is built with BLAS_INFO=generic and calls the system libblas.so.3, which here is
OpenBLAS (pthread build) with its own thread pool. torch.set_num_threads does not reach that pool, so without
this a "1-thread" torch.mm silently runs on every core. We find the OpenBLAS already mapped into the process
and call openblas_set_num_threads on it.

Two thread pools then share the cores: torch's OpenMP team (libgomp) and OpenBLAS's pthreads. With libgomp's
default wait policy its idle threads spin, and on this shared 2-core machine that starves the OpenBLAS threads:
measured with other jobs running, 2-thread training of the lm.py dense model ran at 0.5k-4k tok/s with the
spinning default and at 3k-11k tok/s with OMP_WAIT_POLICY=PASSIVE, interleaved runs. So unless the caller
set OMP_WAIT_POLICY, we set it to PASSIVE here, which must happen before libgomp is loaded (before `import torch`).
Set OMP_WAIT_POLICY=ACTIVE to measure the spinning default instead.

OpenBLAS kernel choice: this machine's environment sets OPENBLAS_CORETYPE=Haswell, which pins OpenBLAS to its
AVX2 kernels; left to detect the CPU, OpenBLAS 0.3.21 picks Cooperlake (AVX-512) and its 1-thread sgemm goes from
~100 to ~180 GFLOP/s here. A peer should be the library at its best, so by default we drop OPENBLAS_CORETYPE and let
OpenBLAS detect the CPU. PEER_OPENBLAS_CORETYPE=<name> (e.g. Haswell) pins a core type instead; "env" keeps
whatever OPENBLAS_CORETYPE says. Like the wait policy, this only works before torch is imported.
"""
import ctypes
import os
import sys

if "torch" in sys.modules:
    print("# warning: threads.py imported after torch; OMP_WAIT_POLICY default not applied", file=sys.stderr)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_coretype = os.environ.get("PEER_OPENBLAS_CORETYPE", "auto")
if _coretype == "auto":
    os.environ.pop("OPENBLAS_CORETYPE", None)
elif _coretype != "env":
    os.environ["OPENBLAS_CORETYPE"] = _coretype

import torch  # noqa: E402

_openblas = None


def _find_openblas():
    global _openblas
    if _openblas is None:
        torch.mm(torch.ones(2, 2), torch.ones(2, 2))  # make sure the BLAS is loaded
        paths = [line.split()[-1] for line in open("/proc/self/maps") if "libopenblas" in line]
        _openblas = ctypes.CDLL(paths[0]) if paths else False
        if _openblas:
            _openblas.openblas_get_corename.restype = ctypes.c_char_p
            _openblas.openblas_get_config.restype = ctypes.c_char_p
    return _openblas


def set_threads(n):
    torch.set_num_threads(n)
    ob = _find_openblas()
    if ob:
        ob.openblas_set_num_threads(n)
        assert ob.openblas_get_num_threads() == n


def describe():
    """One comment line naming the BLAS, for the bench logs."""
    ob = _find_openblas()
    omp = f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    if not ob:
        return f"# torch {torch.__version__}, BLAS: not OpenBLAS, {omp}"
    return (f"# torch {torch.__version__}, {ob.openblas_get_config().decode()}, "
            f"core={ob.openblas_get_corename().decode()}, {omp}")
