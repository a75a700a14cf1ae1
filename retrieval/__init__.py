"""HMAT-Bench library: embedding networks, KD methods, metric losses, evaluation.

Sub-packages are imported on demand so that, for example, ``retrieval.metrics``
can be used without paying for the import of torch.
"""

__version__ = "0.1.0"
