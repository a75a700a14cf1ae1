"""The runner and its commands. Importing it imports ``retrieval`` first, which holds the CPU
kernels to AVX2 before torch loads them (``retrieval.numerics``)."""

import retrieval  # noqa: F401
