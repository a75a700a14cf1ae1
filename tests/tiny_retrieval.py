"""The tiny retrieval config the runner tests share: 20 generated classes of 16x16 images,
one-epoch backbone pretraining, a few epochs of training. ``tiny_retrieval(**changes)``
returns a copy with ``changes`` deep-merged over it (e.g. ``seeds=[0, 1]``)."""

from benchmarks.runner.config import deep_merge

TINY_RETRIEVAL = {
    "dataset": {"name": "synthetic", "options": {"classes": 20, "per_class": 10, "size": 16,
                                                  "test_per_class": None}},
    "pretrain": {"dataset": {"options": {"classes": 20}}, "train": {"epochs": 1}},
    "teacher": {"arch": "small_cnn_s", "embedding_dim": 16, "train": {"epochs": 2}},
    "student": {"arch": "small_cnn_xs", "embedding_dim": 8, "train": {"epochs": 2}},
    "train": {"batch_size": 20, "m_per_class": 5, "milestones": [], "eval_every": 2},
}


def tiny_retrieval(**changes) -> dict:
    cfg = deep_merge(TINY_RETRIEVAL, changes)
    for role in ("teacher", "student"):  # eval_every may not exceed a role's epochs (the config schema)
        every = cfg[role]["train"].get("eval_every", cfg["train"]["eval_every"])
        cfg[role]["train"]["eval_every"] = min(every, cfg[role]["train"]["epochs"])
    return cfg
