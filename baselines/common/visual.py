"""Visual encoder: ResNet-18 (He et al., CVPR 2016) in plain torch, and frame preprocessing.

Mono2Binaural (Gao & Grauman 2019) uses an ImageNet-pretrained torchvision ResNet-18 cut before its
average pool, so a 224 x 448 frame gives a 512 x 7 x 14 feature map. torchvision cannot be installed
beside this project's torch build and ImageNet weights cannot be downloaded here, so the network is
written out below and trained from scratch by default. Its parameter names follow torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1`` ...), so a torchvision ``resnet18`` state dict that the user
has on disk loads with ``load_resnet18_weights`` (its ``fc`` head is ignored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tas_eval.errors import UserError

# The ImageNet channel statistics the reference applies to every frame (RGB, in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Features(nn.Module):
    """ResNet-18 up to its last residual stage: (B, 3, H, W) -> (B, 512, H/32, W/32).

    ``dilated``: the variant of APNet / Sep-Stereo (Zhou et al., ECCV 2020): the last stage keeps
    stride 16 with dilated 3x3 convolutions, and a 2x2 average pool brings the map to H/32 x W/32;
    the parameters (and so the torchvision weights that load) are the same.
    """

    out_channels = 512

    def __init__(self, dilated: bool = False):
        super().__init__()
        self.dilated = dilated
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        stages = []
        in_ch = 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(in_ch, width, stride), BasicBlock(width, width)))
            in_ch = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if dilated:
            for m in self.layer4.modules():
                if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                    # the strided convolutions keep the resolution; the first 3x3 one is not dilated
                    m.stride = (1, 1)
                elif isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                    m.dilation, m.padding = (2, 2), (2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.avg_pool2d(x, 2) if self.dilated else x


def load_resnet18_weights(net: ResNet18Features, path: str | Path) -> None:
    """Load a torchvision-layout ResNet-18 state dict from ``path`` (the ``fc.*`` head is dropped).

    UserError if the file cannot be read or any backbone tensor is missing or has the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: visual weights file not found.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise UserError(f"{path}: cannot be read as a torch state dict ({type(exc).__name__}).") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = f"missing {missing[:3]}" if missing else f"wrong shape for {wrong[:3]}"
        raise UserError(f"{path}: is not a ResNet-18 state dict in torchvision layout ({what}).")
    net.load_state_dict({k: state[k] for k in own})


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB frames (N, H, W, 3) -> float (N, 3, H, W) normalized with the ImageNet statistics."""
    x = torch.as_tensor(np.asarray(frames)).float().div(255.0).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std
