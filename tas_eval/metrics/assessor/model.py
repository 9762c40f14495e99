"""The assessor network: the localizer's encoder (frozen) -> a soft-word projector -> a frozen Llama with LoRA.

Audio tokens. The localizer's encoder gives one embedding per 0.1 s frame (LocalizerNet.embed, on the
peak-normalized clip, as the spatial measures read it); FRAMES_PER_TOKEN consecutive frames are
averaged into one audio token, so a 10 s clip is 20 tokens, each 0.5 s. Keeping time (rather than
pooling a clip into a few learned queries) lets the LM tie a source it is asked about to the
stretches where that source's category and direction show.

Projector: a linear map (after a LayerNorm), not a Q-Former, as BAT allows: the encoder's heads are
linear in the same embedding, so direction, distance and category are linearly readable there, and
a Q-Former's queries trained from scratch on a few hundred clips would be mostly unfitted parameters.
The map's outputs are constrained to the span of words the LM already reads (SoftWordProjector): per
audio token, five slots (category; left/center/right; front/behind; above/level/below; a distance of
0.5 to 10 m), each a softmax over its words weighting their input embeddings, so an audio token
enters the LM as a few soft words ("cello", "left", "front", "level", "2.5m"). Measured on two CPU
cores: with an unconstrained linear projector (LayerNorm + Linear to the LM's width), 400 steps of
training left the LM answering the most frequent answer whatever the audio, on rendered scenes as on
the val clips, although a linear probe on the same tokens reads the side of a single source without
error. The slots are first fitted as classifiers of rendered single-source scenes
(training.fit_projector), then trained with the LM.

Prompt (the audio tokens between two pieces of text, as BAT's template)::

    Audio: <audio tokens> \nQuestion: <question>\nAnswer: <answer></s>

Training minimizes the cross-entropy of the answer's tokens and the end-of-text token only. LoRA as
BAT and TASU: rank 8, alpha 32, dropout 0.05, on q_proj and v_proj; the LM's own weights stay frozen.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tas_eval.audio import peak_normalize
from tas_eval.metrics.localizer.features import binaural_features

FRAMES_PER_TOKEN = 5  # 0.1 s localizer frames per audio token (0.5 s)
AUDIO_PREFIX = "Audio:"
LORA = {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def question_text(question: str) -> str:
    """The text between the audio tokens and the answer."""
    return f"\nQuestion: {question}\nAnswer:"


@torch.no_grad()  # not inference_mode: training feeds these tokens to the projector under autograd
def audio_embeddings(localizer, audio: torch.Tensor) -> torch.Tensor:
    """(B, 2, T) binaural audio at 16 kHz -> (B, T // 8000, encoder width): the localizer's frame embeddings of
    the peak-normalized clips, averaged over FRAMES_PER_TOKEN frames (float32, on the CPU)."""
    x = peak_normalize(audio.to(localizer.device, torch.float64)).float()
    emb = localizer.network.embed(binaural_features(x))  # (B, frames, width)
    n = emb.shape[1] // FRAMES_PER_TOKEN
    return emb[:, : n * FRAMES_PER_TOKEN].reshape(emb.shape[0], n, FRAMES_PER_TOKEN, -1).mean(2).float().cpu()


def slot_words() -> dict[str, list[str]]:
    """The words each slot of an audio token is drawn from: the answers' own vocabulary."""
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.data.qa import DISTANCE_STEP_M, category_words, distance_text

    return {"category": [category_words(c) for c in category_names()],
            "side": ["left", "center", "right"], "front": ["front", "behind"], "vertical": ["above", "level", "below"],
            "distance": [distance_text(k * DISTANCE_STEP_M) for k in range(1, 21)]}


def clip_tokens(localizer, items) -> list[torch.Tensor]:
    """Audio tokens (n, encoder width) of each (2, T) clip at 16 kHz (numpy or torch), one clip at a time
    (clips may differ in length)."""
    return [audio_embeddings(localizer, torch.as_tensor(x)[None])[0] for x in items]


class SoftWordProjector(nn.Module):
    """Encoder embeddings (n, width) -> (n * slots, LM width): per audio token and slot, a softmax over the
    slot's words (a linear map of the layer-normed embedding) weighting those words' LM input embeddings
    (each word's the mean of its tokens'), so every audio token enters the LM as words it already reads."""

    def __init__(self, encoder_dim: int, bases: dict[str, torch.Tensor]):
        super().__init__()
        self.norm = nn.LayerNorm(encoder_dim)
        self.slots = list(bases)
        self.heads = nn.ModuleDict({k: nn.Linear(encoder_dim, v.shape[0]) for k, v in bases.items()})
        for k, v in bases.items():
            self.register_buffer(f"basis_{k}", v.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        slots = [torch.softmax(self.heads[k](h), dim=-1) @ getattr(self, f"basis_{k}") for k in self.slots]
        return torch.stack(slots, dim=1).reshape(-1, slots[0].shape[-1])  # token 0's slots, then token 1's, ...


class AssessorNet(nn.Module):
    """Projector + LM with LoRA. ``sequences`` lays out a batch; ``loss``, ``choose`` and ``generate`` use it."""

    def __init__(self, llm, tokenizer, encoder_dim: int):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        embed = llm.get_input_embeddings()
        bases = {}
        with torch.no_grad():
            for slot, words in slot_words().items():
                ids = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in words]
                bases[slot] = torch.stack([embed.weight[i].mean(0) for i in ids]).float()
        self.projector = SoftWordProjector(encoder_dim, bases)
        self.llm = get_peft_model(llm, LoraConfig(**LORA))
        self.tokenizer = tokenizer
        self.eos = int(tokenizer.eos_token_id)

    def trainable_state(self) -> dict:
        """The trained weights only: the projector's and the LoRA adapters' (CPU tensors)."""
        from peft import get_peft_model_state_dict

        return {"projector": {k: v.detach().cpu() for k, v in self.projector.state_dict().items()},
                "lora": {k: v.detach().cpu() for k, v in get_peft_model_state_dict(self.llm).items()}}

    def load_trainable(self, state: dict) -> None:
        """Load ``trainable_state``'s dict (strict for the projector; every adapter key must fit)."""
        from peft import set_peft_model_state_dict

        self.projector.load_state_dict(state["projector"], strict=True)
        result = set_peft_model_state_dict(self.llm, state["lora"])
        unexpected = getattr(result, "unexpected_keys", []) or []
        if unexpected:
            raise ValueError(f"{len(unexpected)} adapter weight(s) do not fit this LM, e.g. '{unexpected[0]}'")

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def sequences(self, audio_tokens: list[torch.Tensor], questions: list[str], answers: list[str] | None,
                  left_pad: bool) -> dict:
        """Input embeddings (B, L, hidden), attention mask, position ids and answer positions of a batch:
        per example, its audio tokens (n, encoder width), question and (if given) answer plus end-of-text."""
        embed = self.llm.get_input_embeddings()
        device = embed.weight.device
        prefix = self._ids(AUDIO_PREFIX)
        rows, spans = [], []
        for k, (tokens, q) in enumerate(zip(audio_tokens, questions)):
            before = torch.tensor(prefix, device=device)
            after = self._ids(question_text(q))
            answer = (self._ids(" " + answers[k]) + [self.eos]) if answers is not None else []
            text_after = torch.tensor(after + answer, device=device, dtype=torch.long)
            parts = [embed(before), self.projector(tokens.to(device)), embed(text_after)]
            row = torch.cat(parts)
            rows.append((row, answer))
            spans.append((len(row) - len(answer), len(row)))
        length = max(len(r) for r, _ in rows)
        hidden = rows[0][0].shape[-1]
        x = torch.zeros(len(rows), length, hidden, device=device)
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
        labels = torch.full((len(rows), length), -100, dtype=torch.long, device=device)
        offsets = []
        for k, (row, answer) in enumerate(rows):
            off = length - len(row) if left_pad else 0
            x[k, off : off + len(row)] = row
            mask[k, off : off + len(row)] = 1
            a, b = spans[k]
            if answer:
                labels[k, off + a : off + b] = torch.tensor(answer, device=device)
            offsets.append(off)
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        return {"inputs_embeds": x, "attention_mask": mask, "position_ids": positions, "labels": labels}

    def loss(self, audio_tokens, questions, answers) -> torch.Tensor:
        """Mean cross-entropy (nats per token) of the answers' tokens and end-of-text."""
        batch = self.sequences(audio_tokens, questions, answers, left_pad=False)
        labels = batch.pop("labels")
        first = self._first_answer(labels)
        logits = self.llm(**batch, logits_to_keep=labels.shape[1] - first).logits[:, :-1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, first + 1 :].reshape(-1),
                               ignore_index=-100)

    @staticmethod
    def _first_answer(labels: torch.Tensor) -> int:
        """The position before the earliest answer token of a batch: logits are needed from there on only
        (the LM head over the vocabulary is a large share of a small LM's cost)."""
        return int((labels != -100).float().argmax(dim=1).min()) - 1

    @torch.inference_mode()
    def choose(self, audio_tokens, questions, candidates: list[tuple[str, ...]]) -> list[str]:
        """Per example, the candidate answer of highest log-likelihood (its tokens and end-of-text)."""
        flat_tokens, flat_q, flat_a, owner = [], [], [], []
        for k, (tokens, q, cands) in enumerate(zip(audio_tokens, questions, candidates)):
            for c in cands:
                flat_tokens.append(tokens)
                flat_q.append(q)
                flat_a.append(c)
                owner.append(k)
        batch = self.sequences(flat_tokens, flat_q, flat_a, left_pad=False)
        labels = batch.pop("labels")
        first = self._first_answer(labels)
        labels = labels[:, first + 1 :]
        logits = self.llm(**batch, logits_to_keep=labels.shape[1] + 1).logits[:, :-1]
        logp = torch.log_softmax(logits.double(), dim=-1)
        picked = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        scores = (picked * (labels != -100)).sum(-1).tolist()
        out = []
        for k, cands in enumerate(candidates):
            own = [s for s, o in zip(scores, owner) if o == k]
            out.append(cands[int(max(range(len(own)), key=own.__getitem__))])
        return out

    @torch.inference_mode()
    def generate(self, audio_tokens, questions, max_new_tokens: int) -> list[str]:
        """Per example, the greedy answer (at most ``max_new_tokens`` tokens, up to end-of-text), decoded."""
        batch = self.sequences(audio_tokens, questions, None, left_pad=True)
        batch.pop("labels")
        mask, positions = batch["attention_mask"], batch["position_ids"]
        out = self.llm(inputs_embeds=batch["inputs_embeds"], attention_mask=mask, position_ids=positions,
                       use_cache=True, logits_to_keep=1)
        cache, done = out.cache, torch.zeros(len(questions), dtype=torch.bool)
        tokens: list[list[int]] = [[] for _ in questions]
        nxt = out.logits[:, -1].argmax(-1)
        last = positions[:, -1:]
        for _ in range(max_new_tokens):
            for k, t in enumerate(nxt.tolist()):
                if not done[k]:
                    if t == self.eos:
                        done[k] = True
                    else:
                        tokens[k].append(t)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            last = last + 1
            out = self.llm(input_ids=nxt[:, None], attention_mask=mask, position_ids=last, cache=cache,
                           use_cache=True)
            cache = out.cache
            nxt = out.logits[:, -1].argmax(-1)
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
