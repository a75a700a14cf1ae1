"""Pictures of what HMAT transfers: teacher vs ``none`` student vs ``hmat`` student.

    python -m benchmarks.visualize [--suite retrieval] [--config FILE] [--seed 0] [--cache-dir cache] [--images 3]
                                   [--out results/retrieval/<dataset>/hmat_attention.png]

Reads the checkpoints a ``python -m benchmarks.run`` of the same config left in the
cache (teacher, and the ``none`` and ``hmat`` students of ``--seed``) and, for a few
test images, draws per model: the activation-attention map of each stage, the
stage-1 position-attention row of the image's centre pixel, and the stage-4 channel
affinity (for HMAT, after its learned connector: what the loss compares).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors  # noqa: E402
from benchmarks.runner.config import resolve_config  # noqa: E402
from benchmarks.runner.replicates import replicate_config  # noqa: E402
from benchmarks.runner.schema import typed  # noqa: E402
from benchmarks.runner.suite_runner import teacher_seed_of  # noqa: E402
from benchmarks.runner.tasks import get_task, retrieval as suite  # noqa: E402
from retrieval.methods.losses import activation_attention, channel_affinity, position_affinity  # noqa: E402
from retrieval.utils.cache_files import load_torch  # noqa: E402


def _checkpoints(cfg, seed, cache_dir) -> list:
    """The cached teacher and the none and hmat students of ``seed`` this picture reads."""
    students = [suite.student_checkpoint(cfg, cache_dir, suite.run_id_of(cfg, m, seed)[0]) for m in ("hmat", "none")]
    return [get_task("retrieval").teacher_checkpoint(cfg, cache_dir, teacher_seed_of(cfg, seed)), *students]


def _load_student(cfg, data, teacher, method, seed, cache_dir):
    run_id, _ = suite.run_id_of(cfg, method, seed)
    path = suite.student_checkpoint(cfg, cache_dir, run_id)  # its presence was checked by main (_checkpoints)
    m = suite.build_student_method(cfg, data, teacher, method, cfg["methods"].get(method))
    m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=False)
    return m.eval()


@torch.no_grad()
def _panels(model, image, connector=None):
    stages = model.forward_features(image[None])["stages"]
    acts = [activation_attention(f)[0].view(f.shape[-2:]) for f in stages]
    f1 = stages[0]
    h, w = f1.shape[-2:]
    pos_row = position_affinity(f1, 0.1)[0, (h // 2) * w + w // 2].view(h, w)
    f4 = connector(stages[3]) if connector is not None else stages[3]
    return acts, pos_row, channel_affinity(f4, 0.1)[0]


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="retrieval", help="retrieval or hmat-ablation: whose checkpoints to read")
    p.add_argument("--config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--out")
    add_debug_flag(p)
    args = p.parse_args(argv)
    cfg = replicate_config(resolve_config(args.suite, args.config), args.seed)  # the networks of that replicate
    # absent, or damaged (moved aside with a line saying so: the benchmark run writes them anew)
    missing = [str(path) for path in _checkpoints(cfg, args.seed, Path(args.cache_dir))
               if load_torch(path, then="") is None]
    if missing:  # before building any data: nothing is trained here
        raise UserError(f"no cached network(s) {missing} for seed {args.seed}; run `python -m benchmarks.run "
                        f"--suite {args.suite} --methods none,hmat --seeds {args.seed} --cache-dir {args.cache_dir}` "
                        f"with this config first")
    data = suite.prepare(cfg, cache_dir=Path(args.cache_dir))
    teacher, _, _ = get_task("retrieval").load_or_train_teacher(cfg, data, teacher_seed_of(cfg, args.seed), Path(args.cache_dir), False)
    teacher.eval()
    hmat = _load_student(cfg, data, teacher, "hmat", args.seed, Path(args.cache_dir))
    none = _load_student(cfg, data, teacher, "none", args.seed, Path(args.cache_dir))
    connector = hmat.connectors["4"] if "4" in hmat.connectors else None
    models = [("teacher", teacher, None), ("none", none.student, None), ("hmat", hmat.student, connector)]
    test = data["test"]
    picks = [int(i) for i in torch.linspace(0, len(test) - 1, args.images).long()]
    cols = 7
    fig, axes = plt.subplots(len(picks) * 3, cols, figsize=(cols * 1.7, len(picks) * 3 * 1.7))
    titles = ["image", "act s1", "act s2", "act s3", "act s4", "pos row (s1)", "channel aff. (s4)"]
    for i, idx in enumerate(picks):
        image = test[idx]["image"]
        shown = (image - image.min()) / (image.max() - image.min() + 1e-8)
        for j, (name, model, conn) in enumerate(models):
            r = i * 3 + j
            acts, pos_row, chan = _panels(model, image, conn)
            row = [shown.permute(1, 2, 0), *acts, pos_row, chan]
            for c, panel in enumerate(row):
                ax = axes[r, c]
                ax.imshow(panel.numpy(), cmap=None if c == 0 else "viridis")
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(titles[c], fontsize=8)
            axes[r, 0].set_ylabel(f"{name}\n#{idx}", fontsize=8)
    name = typed(cfg).dataset.name
    fig.suptitle(f"{name} test images, seed {args.seed}: teacher / none / hmat", fontsize=10)
    fig.tight_layout()
    out = Path(args.out or f"results/retrieval/{name}/hmat_attention.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
