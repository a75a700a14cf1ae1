"""Datasets: official layouts of CUB-200-2011, Cars196, SOP, a generic image folder, the fonts of
a Debian package, and embedded data that needs no download. Entry point: ``build_dataset(name, root, split)``."""

from retrieval.data.base import (CorruptImageError, DatasetNotFoundError, ImageFileDataset, ImageReadError,
                                 RetrievalDataset, TensorImageDataset, check_images, class_split_mask)
from retrieval.data.registry import SPLITS, build_dataset, is_generated, list_datasets, register_dataset, seed_draws

__all__ = ["build_dataset", "is_generated", "list_datasets", "register_dataset", "seed_draws", "SPLITS", "RetrievalDataset",
           "ImageFileDataset", "TensorImageDataset", "DatasetNotFoundError", "ImageReadError",
           "class_split_mask", "check_images", "CorruptImageError"]
