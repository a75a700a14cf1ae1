"""Write scikit-learn's 8x8 digits (1,797 images, 10 classes) as an image folder,
``DIR/digit_<k>/<index>.png``: a small own-data folder to try ``--dataset folder`` on.

    python -m benchmarks.make_digits_folder DIR
    python -m benchmarks.run --suite retrieval --dataset folder --data-root DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from benchmarks.runner.errors import ArgumentParser, UserError, add_debug_flag, reports_user_errors


def write_digits_folder(root: Path) -> int:
    """Write the folder under ``root`` (which must not hold images yet); return the image count."""
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return len(digits.target)


@reports_user_errors
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.make_digits_folder", description=__doc__)
    p.add_argument("root", help="folder to write (created; must be empty if it exists)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    root = Path(args.root)
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty; expected a new or empty folder to write the digits into")
    print(f"wrote {write_digits_folder(root)} images in 10 class folders under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
