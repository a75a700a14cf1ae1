"""HMAT-Bench library: embedding networks, KD methods, metric losses, evaluation.

Sub-packages are imported on demand so that, for example, ``retrieval.metrics``
can be used without paying for the import of torch.

Importing it holds CPU kernels to AVX2 on x86 machines (``retrieval.numerics``), so that a
run gives the same numbers on any of them; ``HMAT_CPU_ISA=native`` turns that off.
"""

from retrieval.numerics import pin_cpu_isa as _pin_cpu_isa

_pin_cpu_isa()

__version__ = "0.1.0"
