"""Default transforms: the DML protocol for photos, light augmentation for embedded tensors."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def photo_transform(split: str, image_size: int = 224):
    """Train: resize to (s*8/7)^2, random crop s, flip. Eval: resize, centre crop s. ImageNet stats.

    At s = 224 this is the RKD recipe (resize 256x256, crop 224).
    """
    resize = round(image_size * 8 / 7)

    common_tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                   v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if split in ("train", "fit"):
        return v2.Compose([v2.Resize((resize, resize)), v2.RandomCrop(image_size),
                           v2.RandomHorizontalFlip(), *common_tail])
    return v2.Compose([v2.Resize((resize, resize)), v2.CenterCrop(image_size), *common_tail])


def tensor_transform(split: str, mean, std, pad: int = 2, flip: bool = True):
    """For small uint8 tensors: random crop with padding (+ flip) for training, then normalise."""
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if split in ("train", "fit"):
        return _CropKeepingSize(pad, flip, v2.Compose(tail))
    return v2.Compose(tail)


class _CropKeepingSize:
    """Reflect-pad by ``pad`` then crop back to the input size at a random offset; optional flip."""

    def __init__(self, pad: int, flip: bool, tail):
        self.pad, self.flip, self.tail = pad, flip, tail

    def __call__(self, img):
        h, w = img.shape[-2:]
        if self.pad:
            padded = torch.nn.functional.pad(img[None].float(), [self.pad] * 4, mode="reflect")[0]
            dy, dx = (int(v) for v in torch.randint(0, 2 * self.pad + 1, (2,)))
            img = padded[:, dy:dy + h, dx:dx + w].to(torch.uint8)
        if self.flip and bool(torch.rand(()) < 0.5):
            img = img.flip(-1)
        return self.tail(img)
