"""The assessor network: the localizer (frozen) -> a fixed soft-word projector -> a frozen Llama with LoRA.

Audio tokens: one line of words per source, for the sources the localizer hears in the clip and the
sources the question names. The localizer (frozen) gives, per 0.1 s frame of the peak-normalized clip,
posteriors over azimuth, elevation, distance and category (Localizer.locate's heads). Each category's
line pools the other heads' posteriors over the frames with that category's posterior as weights, mapped
to the answers' words (slot_maps): the azimuth posterior to left/center/right and to front/behind, the
elevation posterior to above/level/below, the distance posterior to the 0.5 m words. ``audio_tokens``
makes the line of every category once per clip; ``for_question`` picks the ones the LM reads: the
categories heard (the posterior averaged over the clip's frames reaches PRESENCE; at most MAX_SOURCES,
the most present first; at least the most present one), then the categories the question names, heard or
not, in the question's order, nearest the question (with the named lines among the others, the LM
learned to read the last line, whichever source it was). A source thus reaches the LM already named, a
question's "the cello" points at one line, and a named source the category head hears faintly is read
from the frames where it hears it most instead of being absent (such sources were about a quarter of the
val clips' questions with the heard ones alone). A question comparing two sources, A and B, reads one
more line, their relation: the probability that A is left (rather than right) of B and farther (rather
than nearer), from the two sources' pooled posteriors taken as independent (relation_orders). Given only
the per-source lines, the LM answered "is A left or right of B" with A's own side, near chance, where
comparing the two lines' side words answers most of them; given every pair's relation line, it did not
find the pair's line among a dozen.

Projector: that fixed linear map, then each slot's word probabilities weighting those words' LM input
embeddings (SoftWordProjector), laid out with a written list's punctuation, so a source enters the LM
as a line of text it already reads ("cello: left, front, level, 2.5m;"). Not a Q-Former: the pooling
by the category head plays a Q-Former's part with fixed queries, and the map has nothing to fit, so
the words mean what the localizer's heads, trained on every frame of their training windows, say.
Learned projectors came first, and with them the assessor stayed near chance on the val clips: one
token per 0.5 s with linear heads on the encoder's embedding (the LM had to tie a named source to
its stretches by itself), then the per-source tokens above with such heads fitted on rendered
single-source scenes. benchmarks/assessor_by_data.py prints, beside the assessor, what a fixed rule
reads from the same pooled heads without an LM: the ceiling of this encoder.

Prompt (the audio tokens between two pieces of text, as BAT's template)::

    Audio: <audio tokens> \nQuestion: <question>\nAnswer: <answer></s>

Training minimizes the cross-entropy of the answer's tokens and the end-of-text token only. LoRA as
BAT and TASU: rank 8, alpha 32, dropout 0.05, on q_proj and v_proj; the LM's own weights stay frozen.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tas_eval.audio import peak_normalize

PRESENCE = 0.03  # mean category posterior over a clip's frames from which the category is a source of it
MAX_SOURCES = 6
AUDIO_PREFIX = "Audio:"
LORA = {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


class AudioTokens(NamedTuple):
    """A clip's audio tokens, n lines: per line its category, its words' probabilities and the category's
    posterior averaged over the clip's frames."""

    category: torch.Tensor  # (n,) int64, indices into slot_words()["category"]
    words: dict  # slot (SLOTS) -> (n, words of the slot) float32 probabilities, each row summing to 1
    mass: torch.Tensor  # (n,) float32 in [0, 1]
    pooled: dict | None = None  # head of RELATION_HEADS -> (n, classes) float64: the line's pooled posterior
    pairs: torch.Tensor | None = None  # (m, 2) int64: (a, b) line indices of the relation lines
    relations: dict | None = None  # RELATIONS -> (m, 2) float32: P(a is [first word] of b), P([second word])


SLOTS = ("side", "front", "vertical", "distance")
RELATIONS = ("side_of", "distance_of")
RELATION_HEADS = ("azimuth", "distance")


def question_text(question: str) -> str:
    """The text between the audio tokens and the answer."""
    return f"\nQuestion: {question}\nAnswer:"


def audio_tokens(localizer, audio: torch.Tensor) -> list[AudioTokens]:
    """(B, 2, T) binaural audio at 16 kHz -> per clip, the AudioTokens of every category the localizer knows,
    the most present first (see the module docstring), on the CPU."""
    from tas_eval.data.builtin.sources import category_names

    x = peak_normalize(audio.to(localizer.device, torch.float64)).float()
    post = {k[2:]: v.cpu() for k, v in localizer.locate(x).items() if k.startswith("p_")}  # (B, frames, classes)
    maps = slot_maps()
    names = category_names()
    index = torch.tensor([names.index(c) for c in localizer.categories])
    out = []
    for b, p in enumerate(post["category"]):
        mass = p.mean(0)
        order = torch.argsort(mass, descending=True, stable=True)
        w = p[:, order] / p[:, order].sum(0).clamp_min(1e-12)  # (frames, categories): each one's frame weights
        pooled = {head: w.T @ post[head][b] for head in RELATION_HEADS}  # (categories, classes)
        words = {slot: (w.T @ post[head][b] @ m).float() for slot, (head, m) in maps.items()}
        out.append(AudioTokens(index[order], words, mass[order].float(), pooled))
    return out


def for_question(tokens: AudioTokens, sources: list[str]) -> AudioTokens:
    """The lines of a clip's ``tokens`` the LM reads for a question naming ``sources`` (category ids): the
    categories heard (mean posterior at least PRESENCE; at most MAX_SOURCES, the most present first; at least
    the most present one) in order of mean posterior, then the named ones, heard or not, in the question's
    order; for a question naming two sources (a, b), the relation line of the pair (a, b) last."""
    from tas_eval.data.builtin.sources import category_names

    names = category_names()
    named = [names.index(s) for s in sources]
    rank = torch.argsort(tokens.mass, descending=True, stable=True).tolist()
    heard = {r for k, r in enumerate(rank[:MAX_SOURCES]) if k == 0 or float(tokens.mass[r]) >= PRESENCE}
    row = {int(c): r for r, c in enumerate(tokens.category.tolist())}
    keep = [r for r in rank if r in heard and int(tokens.category[r]) not in named] + [row[c] for c in named]
    category = tokens.category[keep]
    pairs = relations = None
    if len(named) == 2:
        a, b = len(keep) - 2, len(keep) - 1
        pairs = torch.tensor([[a, b]], dtype=torch.long)
        relations = {}
        for rel, (head, greater) in relation_orders().items():
            p_a, p_b = tokens.pooled[head][keep[a]], tokens.pooled[head][keep[b]]
            first = float(p_a @ greater @ p_b)  # P(a's class beyond b's), the two drawn independently
            relations[rel] = torch.tensor([[first, 1.0 - first]], dtype=torch.float32)
    return AudioTokens(category, {k: v[keep] for k, v in tokens.words.items()}, tokens.mass[keep],
                       {k: v[keep] for k, v in tokens.pooled.items()} if tokens.pooled is not None else None,
                       pairs, relations)


def slot_maps() -> dict[str, tuple[str, torch.Tensor]]:
    """Per slot, (the localizer head it reads, a (classes, words) 0/1 matrix giving each class's word):
    side and front from the azimuth bins' centres (at elevation 0, the benchmark's +-15 degree side
    convention, front when |azimuth| <= 90), vertical from the elevation bins' centres, distance from
    the 0.5 m classes (0 m read as 0.5 m, the nearest word)."""
    from tas_eval.data.qa import front_label, vertical_label
    from tas_eval.data.scene import side_label
    from tas_eval.metrics.localizer import DISTANCE_CLASSES, azimuth_centres, elevation_centres

    words = slot_words()

    def matrix(labels: list[str], slot: str) -> torch.Tensor:
        m = torch.zeros(len(labels), len(words[slot]), dtype=torch.float64)
        for k, label in enumerate(labels):
            m[k, words[slot].index(label)] = 1.0
        return m

    az, el = azimuth_centres(), elevation_centres()
    return {"side": ("azimuth", matrix([side_label(float(a), 0.0) for a in az], "side")),
            "front": ("azimuth", matrix([front_label(float(a)) for a in az], "front")),
            "vertical": ("elevation", matrix([vertical_label(float(e)) for e in el], "vertical")),
            "distance": ("distance", matrix([words["distance"][max(k - 1, 0)] for k in range(DISTANCE_CLASSES)],
                                            "distance"))}


@functools.lru_cache(maxsize=1)  # read for every two-source question; callers must not change the matrices
def relation_orders() -> dict[str, tuple[str, torch.Tensor]]:
    """Per relation, (the localizer head it reads, a (classes, classes) matrix G with G[i, j] = 1 when class i
    lies further along the relation's first word than class j, 1/2 when level with it, 0 otherwise), so that
    p_a @ G @ p_b is the probability that source a is, e.g., left of source b: side_of by the azimuth bins'
    lateral angles at elevation 0 (positive = left; a front bin and its mirror behind are level),
    distance_of by the distance classes."""
    from tas_eval.data.scene import lateral_angle
    from tas_eval.metrics.localizer import DISTANCE_CLASSES, azimuth_centres

    def greater(values) -> torch.Tensor:
        v = torch.as_tensor(np.round(np.asarray(values, dtype=np.float64), 6))
        return (v[:, None] > v[None, :]).double() + 0.5 * (v[:, None] == v[None, :]).double()

    return {"side_of": ("azimuth", greater([lateral_angle(float(a), 0.0) for a in azimuth_centres()])),
            "distance_of": ("distance", greater(np.arange(DISTANCE_CLASSES)))}


def relation_words() -> dict[str, list[str]]:
    """The two words of each relation, in the order of AudioTokens.relations' columns."""
    return {"side_of": ["left", "right"], "distance_of": ["farther", "nearer"]}


def slot_words() -> dict[str, list[str]]:
    """The words each slot of an audio token is drawn from: the answers' own vocabulary."""
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.data.qa import DISTANCE_STEP_M, category_words, distance_text

    return {"category": [category_words(c) for c in category_names()],
            "side": ["left", "center", "right"], "front": ["front", "behind"], "vertical": ["above", "level", "below"],
            "distance": [distance_text(k * DISTANCE_STEP_M) for k in range(1, 21)]}


def clip_tokens(localizer, items) -> list[AudioTokens]:
    """``audio_tokens`` of each (2, T) clip at 16 kHz (numpy or torch), one clip at a time (clips may differ in
    length)."""
    return [audio_tokens(localizer, torch.as_tensor(x)[None])[0] for x in items]


class SoftWordProjector(nn.Module):
    """AudioTokens (n lines, m pairs) -> (n * 10 + m * 6, LM width): per line, its category's word embedding, then
    per slot the word probabilities weighting those words' LM input embeddings (each word's the mean of its
    tokens'), laid out with the punctuation of a written list, "cello: left, front, level, 2.5m;"; then per
    pair the same for its relations, "cello left farther than harp;" (``separators``: the embeddings of ":",
    ",", ";" and "than"). It has no trained weights: its buffers record the embeddings it wrote with."""

    def __init__(self, bases: dict[str, torch.Tensor], separators: torch.Tensor):
        super().__init__()
        for k, v in bases.items():
            self.register_buffer(f"basis_{k}", v.detach().clone())
        self.register_buffer("separators", separators.detach().clone())

    def forward(self, tokens: AudioTokens) -> torch.Tensor:
        device = self.basis_category.device
        n = len(tokens.category)
        colon, comma, semicolon = (self.separators[k].expand(n, -1) for k in range(3))
        words = [self.basis_category[tokens.category.to(device)], colon]
        for j, slot in enumerate(SLOTS):
            words += [tokens.words[slot].to(device) @ getattr(self, f"basis_{slot}"),
                      comma if j < len(SLOTS) - 1 else semicolon]
        lines = torch.stack(words, dim=1).reshape(-1, words[0].shape[-1])  # source 0's line, then source 1's, ...
        if tokens.pairs is None or not len(tokens.pairs):
            return lines
        m = len(tokens.pairs)
        names = self.basis_category[tokens.category.to(device)]
        pairs = tokens.pairs.to(device)
        rel = [names[pairs[:, 0]]]
        rel += [tokens.relations[r].to(device) @ getattr(self, f"basis_{r}") for r in RELATIONS]
        rel += [self.separators[3].expand(m, -1), names[pairs[:, 1]], self.separators[2].expand(m, -1)]
        return torch.cat([lines, torch.stack(rel, dim=1).reshape(-1, lines.shape[-1])])


class AssessorNet(nn.Module):
    """Projector + LM with LoRA. ``sequences`` lays out a batch; ``loss``, ``choose`` and ``generate`` use it."""

    def __init__(self, llm, tokenizer):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        embed = llm.get_input_embeddings()
        bases = {}
        with torch.no_grad():
            for slot, words in {**slot_words(), **relation_words()}.items():
                ids = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in words]
                bases[slot] = torch.stack([embed.weight[i].mean(0) for i in ids]).float()
            marks = [tokenizer(m, add_special_tokens=False)["input_ids"] for m in (":", ",", ";", " than")]
            separators = torch.stack([embed.weight[i].mean(0) for i in marks]).float()
        self.projector = SoftWordProjector(bases, separators)
        self.llm = get_peft_model(llm, LoraConfig(**LORA))
        self.tokenizer = tokenizer
        self.eos = int(tokenizer.eos_token_id)

    def trainable_state(self) -> dict:
        """The trained weights, the LoRA adapters', and the projector's buffers (CPU tensors)."""
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
        per example, the AudioTokens it reads (``for_question``'s), its question and (if given) answer plus
        end-of-text."""
        embed = self.llm.get_input_embeddings()
        device = embed.weight.device
        prefix = self._ids(AUDIO_PREFIX)
        rows, spans = [], []
        for k, (tokens, q) in enumerate(zip(audio_tokens, questions)):
            before = torch.tensor(prefix, device=device)
            after = self._ids(question_text(q))
            answer = (self._ids(" " + answers[k]) + [self.eos]) if answers is not None else []
            text_after = torch.tensor(after + answer, device=device, dtype=torch.long)
            parts = [embed(before), self.projector(tokens), embed(text_after)]
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
