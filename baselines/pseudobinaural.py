"""PseudoBinaural (Xu et al., "Visually Informed Binaural Audio Generation without Binaural Audios",
CVPR 2021), guided by video frames or by text (TASU's retrained baseline, seed 001 Table 3).

The network is AudioNet + APNet (baselines/apnet.py) with the plain (not dilated) ResNet-18 and
instance norm in the audio network, trained with L1 on batches of which half are real training crops
and half pseudo binaural crops (baselines/common/pseudo_binaural.py): isolated TRAIN sources placed in
the camera's view and rendered through first-order ambisonics decoded to 8 virtual loudspeakers and
the KEMAR HRIRs, never through the benchmark's renderer. The guidance of a pseudo crop is the picture
of its scene (visual) or its dense text written from the sampled positions (text); that of a real
crop is the frame or the dense text at its centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from baselines.apnet import PAPER as APNET_PAPER
from baselines.apnet import APNet, text_configs
from baselines.common.pseudo_binaural import PseudoSampler, pseudo_frame
from baselines.common.solo_sources import SoloSources
from baselines.common.training import train_loop

PAPER = ("Xu et al., Visually Informed Binaural Audio Generation without Binaural Audios (PseudoBinaural), "
         "CVPR 2021")

# scripts/sepstereo_Augment/APNet_train_crop.sh: batch 192, 300 epochs, lr 5e-5 (visual) / 5e-4 (audio) / 1e-3
# (fusion, the default), x0.94 every 5 epochs, L1, instance norm; real and pseudo data half and half.
# Epochs as steps of FAIR-Play's 1497 training clips: 7.8 steps an epoch at batch 192.
_PAPER_CONFIG = {
    **APNet.configs["paper"],
    "batch_size": 192, "steps": 2340, "lr_visual": 5e-5, "lr_audio": 5e-4, "lr_fusion": 1e-3, "lr_decay": 0.94,
    "lr_decay_every": 39, "loss": "l1", "norm": "instance", "dilated": False, "real_share": 0.5,
}
_SMALL_CONFIG = {
    **_PAPER_CONFIG,
    "batch_size": 16, "steps": 300, "lr_decay_every": 100, "ngf": 16, "image_size": [64, 128], "checkpoint_every": 50,
}
_TINY_CONFIG = {
    **_SMALL_CONFIG,
    "batch_size": 4, "steps": 10, "lr_visual": 1e-3, "lr_audio": 3e-3, "lr_fusion": 3e-3, "hop_s": 0.63, "ngf": 4,
    "image_size": [32, 64], "checkpoint_every": 5,
}


class PseudoBinaural(APNet):
    """APNet trained on real crops and on pseudo binaural crops rendered from isolated train sources."""

    paper = PAPER
    configs = {"paper": _PAPER_CONFIG, "small": _SMALL_CONFIG, "tiny": _TINY_CONFIG}

    def _pseudo_map(self, batch: dict) -> torch.Tensor:
        """Guidance maps of pseudo crops: their scenes' pictures, or their prompts."""
        if self.kind == "text":
            return self.net.guidance_map(self.guidance_input(texts=batch["prompts"]))
        size = tuple(self.config["image_size"])
        frames = np.stack([pseudo_frame(scene, size) for scene in batch["scenes"]])
        return self.net.guidance_map(self.guidance_input(images=frames))

    def mixed_loss(self, sampler, pseudo: PseudoSampler, step: int, batch_size: int) -> torch.Tensor:
        """The loss of one training batch: ``real_share`` of it real crops, the rest pseudo crops."""
        n_real = int(round(batch_size * float(self.config["real_share"])))
        monos, diffs, maps = [], [], []
        if n_real:
            real = sampler.batch(step, n_real)
            monos.append(real["mono"])
            diffs.append(real["diff"])
            maps.append(self._crop_map(sampler, real))
        if batch_size - n_real:
            fake = pseudo.batch(step, batch_size - n_real)
            monos.append(torch.from_numpy(fake["mono"]))
            diffs.append(torch.from_numpy(fake["diff"]))
            maps.append(self._pseudo_map(fake))
        return self._loss(torch.cat(monos), torch.cat(diffs), torch.cat(maps))

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Train on the train part of ``split`` and pseudo data from its sources; resumes from ``checkpoint_dir``."""
        sampler = self._prepare(dataset, split, config, device, seed)
        pseudo = PseudoSampler(SoloSources(dataset, split, float(config["crop_s"]), seed, self.name))
        optimizer, schedule = self._optimizer(config)
        batch = int(config["batch_size"])
        self.losses = train_loop(self.net, optimizer, lambda step: self.mixed_loss(sampler, pseudo, step, batch),
                                 int(config["steps"]), checkpoint_dir, int(config.get("checkpoint_every", 100)),
                                 desc=f"training {self.name}", on_step=schedule)


class PseudoBinauralVisual(PseudoBinaural):
    name = "pseudobinaural_visual"
    guidance = frozenset({"visual"})
    kind = "visual"
    description = "PseudoBinaural: APNet trained on real and ambisonic-rendered pseudo binaural crops; frames"


class PseudoBinauralText(PseudoBinaural):
    name = "pseudobinaural_text"
    guidance = frozenset({"text"})
    kind = "text"
    paper = PAPER + f"; re-trained with text as in TASU (seed 001) Table 3; network of {APNET_PAPER.split(',')[0]}"
    description = "PseudoBinaural re-trained with text (TASU's baseline): prompts written from the pseudo scenes' positions"
    configs = text_configs(PseudoBinaural.configs)
