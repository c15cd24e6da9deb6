"""Cross-attention maps: which latent pixels read which word of the prompt.

In every cross-attention layer of the UNet (`attn2` of each transformer block), the latent pixels are the queries
and the prompt's token states are the keys and values:

    Q = W_Q φ(z_t)  (HW × d per head),   K = W_K τ(y),  V = W_V τ(y)  (L × d per head)
    A = softmax(Q Kᵀ / √d + M)           (HW × L): row p is how pixel p spreads its attention over the L tokens
    out = A V

M is the attention mask as the UNet receives it: 0 on the prompt's tokens, −10000 on padding (the shapes model
masks its padding; Stable Diffusion reads all 77 positions, M = 0). Each row of A sums to 1 over the tokens, so
column j of A, reshaped to h × w, is "where token j is read": the map this module records.

    from pipelines.ldm.pipeline import load_ldm
    from pipelines.ldm.attention_maps import attention_maps
    r = attention_maps(load_ldm(), "a small red circle on the left, black background", seed=0, scale=3, steps=20)
    r.tokens                      # ['[CLS]', 'a', 'small', 'red', 'circle', ..., '[SEP]'] as the tokenizer split it
    r.maps()                      # (L, H, W): averaged over heads, layers and every step; sums to 1 over tokens
    r.maps(resolution=8, steps=(10, 19))   # only the 8×8 layers, only the last ten steps
    r.at_step(5)                  # maps[step][token]: step 5's maps, to watch them form

How it is captured: `AttentionRecorder`, a diffusers attention processor, is set on the cross-attention modules
only (`unet.set_attn_processor`, while `capture` is open). It computes A exactly as diffusers' `AttnProcessor`
does (`attn.get_attention_scores`), keeps the head average of A for the conditional half of the classifier-free
guidance batch, and returns A V as before. When `capture` closes, the UNet gets its own processors back (the
fused scaled-dot-product ones, which never form A), so sampling without maps runs at its usual speed. A call from
another thread (another visitor's request while the maps are being recorded) goes straight to the original
processor: it neither records nor changes by a bit.
"""
from __future__ import annotations

import math
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

MAX_MAP_STEPS = 50  # denoising steps whose maps one request may keep (every step's maps are stored)
CROSS_ATTENTION = "attn2.processor"  # diffusers' name of a transformer block's cross-attention processor


# ----------------------------------------------------------------------------- the store
class AttentionStore:
    """The head-averaged attention probabilities of one sampling run, summed per step and per latent resolution.

    One UNet forward calls every cross-attention layer once, so call c of the run belongs to step c // layers.
    For each step and resolution h×w it keeps Σ_layers A (n, L, h, w) and the number of layers summed."""

    def __init__(self, num_images: int, layers: int):
        self.n, self.layers, self.calls = int(num_images), int(layers), 0
        self.owner = threading.get_ident()          # only this thread's UNet calls are recorded
        self.sums: list[dict[int, torch.Tensor]] = []     # step -> {h: Σ A over that resolution's layers}
        self.counts: list[dict[int, int]] = []           # step -> {h: number of layers}

    def records_here(self) -> bool:
        return threading.get_ident() == self.owner

    def record(self, probs: torch.Tensor) -> None:
        """probs: (batch, HW, L), already averaged over heads. Guidance batches are [uncond, cond] (or [cond] alone
        at w = 1): the conditional rows are always the last n, and only they are kept."""
        step = self.calls // self.layers
        self.calls += 1
        batch, hw, length = probs.shape
        h = math.isqrt(hw)
        if h * h != hw:
            raise ValueError(f"cross-attention over {hw} latent pixels: only square latents are supported")
        a = probs[batch - self.n:].float().transpose(1, 2).reshape(self.n, length, h, h).cpu()
        while len(self.sums) <= step:
            self.sums.append({})
            self.counts.append({})
        self.sums[step][h] = self.sums[step].get(h, 0) + a
        self.counts[step][h] = self.counts[step].get(h, 0) + 1

    @property
    def steps(self) -> int:
        return len(self.sums)

    @property
    def resolutions(self) -> list[int]:
        return sorted({h for s in self.sums for h in s})

    def maps(self, resolution: int | None = None, steps: tuple[int, int] | None = None) -> torch.Tensor:
        """(n, L, H, W): the mean of A over the layers of `resolution` (None: all layers, each upsampled to the
        largest resolution first) and over steps first … last (inclusive; None: all). Upsampling is bilinear, a
        convex combination of neighbours, and every average has weights summing to 1, so at every pixel the maps
        still sum to 1 over the L tokens."""
        if not self.sums:
            raise ValueError("nothing was recorded: no cross-attention layer ran")
        first, last = (0, self.steps - 1) if steps is None else (int(steps[0]), int(steps[1]))
        if not 0 <= first <= last < self.steps:
            raise ValueError(f"Steps must satisfy 0 ≤ first ≤ last ≤ {self.steps - 1}, got {first} … {last}.")
        chosen = self.resolutions if resolution is None else [int(resolution)]
        if not set(chosen) <= set(self.resolutions):
            raise ValueError(f"The UNet has cross-attention at {self._sizes()} latent pixels, not {resolution}.")
        size = max(chosen)
        total, count = 0, 0
        for s in range(first, last + 1):
            for h in chosen:
                a = self.sums[s][h]
                total = total + (a if h == size else F.interpolate(a, size=(size, size), mode="bilinear",
                                                                   align_corners=False))
                count += self.counts[s][h]
        return total / count

    def _sizes(self) -> str:
        return ", ".join(f"{h}×{h}" for h in self.resolutions)


# ----------------------------------------------------------------------------- the processor
class AttentionRecorder:
    """A diffusers attention processor for cross-attention (`attn2`): diffusers' `AttnProcessor` step by step, plus
    one line that hands the head average of A = softmax(QKᵀ/√d + M) to the store."""

    def __init__(self, store: AttentionStore, original):
        self.store, self.original = store, original

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if encoder_hidden_states is None or not self.store.records_here():
            # self-attention, or another thread's request: exactly what the UNet does without maps
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        ndim = hidden_states.ndim
        if ndim == 4:                                   # (B, C, h, w) feature maps -> (B, hw, C) pixel sequence
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, length = encoder_hidden_states.shape[:2]
        # M: the UNet passes the mask as a bias, (B, 1, L): 0 keep, −10000 padding; repeated for every head
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        # Q from the pixels, K and V from the prompt's token states; heads split into the batch: (B·heads, ·, d)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        # A = softmax(Q Kᵀ · attn.scale + M), attn.scale = 1/√d: (B·heads, hw, L), each row sums to 1 over tokens
        probs = attn.get_attention_scores(query, key, attention_mask)
        self.store.record(probs.unflatten(0, (batch, attn.heads)).mean(1))   # the mean over heads
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))     # A V, heads joined again
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))        # output projection, dropout
        if ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # one capture at a time per UNet
_LOCKS_LOCK = threading.Lock()


def _lock_for(unet) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(unet, threading.Lock())


def cross_attention_layers(unet) -> list[str]:
    """The names of the UNet's cross-attention processors (`...attn2.processor`)."""
    return [name for name in unet.attn_processors if name.endswith(CROSS_ATTENTION)]


@contextmanager
def capture(unet, num_images: int):
    """Record cross-attention while open: `AttentionRecorder` on every attn2 module, the UNet's own processors
    everywhere else, and all of them restored (the same objects) on exit. One capture at a time per UNet."""
    with _lock_for(unet):
        saved = dict(unet.attn_processors)
        layers = cross_attention_layers(unet)
        if not layers:
            raise ValueError("This UNet has no cross-attention layers: there is nothing to map.")
        store = AttentionStore(num_images, len(layers))
        unet.set_attn_processor({name: AttentionRecorder(store, p) if name in layers else p
                                 for name, p in saved.items()})
        try:
            yield store
        finally:
            unet.set_attn_processor(saved)


# ----------------------------------------------------------------------------- one run, for the tab
@dataclass
class AttentionResult:
    """The generated image, the prompt's tokens as the tokenizer split them, and the recorded maps."""
    image: torch.Tensor            # (3, H, W) in [-1, 1]
    tokens: list[str]              # the positions the encoder read ([CLS] … [SEP]; SD: <|startoftext|> …)
    length: int                    # L, every position the UNet attends to (tokens, then padding)
    store: AttentionStore
    timesteps: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def resolutions(self) -> list[int]:
        return self.store.resolutions

    @property
    def steps(self) -> int:
        return self.store.steps

    def maps(self, resolution: int | None = None, steps: tuple[int, int] | None = None) -> torch.Tensor:
        """(L, H, W) of the one image: positions 0 … len(tokens) − 1 are the tokens, the rest padding."""
        return self.store.maps(resolution, steps)[0]

    def at_step(self, step: int, resolution: int | None = None) -> torch.Tensor:
        """maps[step][token]: (L, H, W) of one step alone."""
        return self.maps(resolution, (step, step))


def check_prompt(model, prompt) -> tuple[list[str], int]:
    """(tokens, limit): the prompt as the model's tokenizer splits it, or ValueError for what has no maps."""
    if not isinstance(prompt, str):
        raise ValueError(f"The prompt must be text, got {type(prompt).__name__}.")
    if not prompt.strip():
        raise ValueError("Type a prompt: an empty prompt has no words to attend to (only the special tokens).")
    tokens, limit, truncated = model.tokenize(prompt)
    if truncated:
        raise ValueError(f"The prompt is longer than the text encoder reads ({limit - 2} word pieces after the two "
                         "special tokens): the words past that never reach the UNet, so they have no map. "
                         "Shorten the prompt.")
    return tokens, limit


def attention_maps(model, prompt: str, seed: int = 0, scale: float = 3.0, steps: int = 20,
                   sampler: str = "DDIM", negative_prompt: str = "", progress=None) -> AttentionResult:
    """Generate one image of `prompt` with `model` (a `pipelines.ldm.pipeline.LatentDiffusion`) and record its
    cross-attention maps at every step. w = 0 is refused: the sampler then runs the unconditional pass alone and
    the prompt is never read."""
    tokens, _ = check_prompt(model, prompt)
    scale, steps, _ = model.check(scale, steps, 1)
    if scale == 0:
        raise ValueError("At w = 0 the sampler runs only the unconditional pass: the UNet never reads the prompt, so "
                         "there is no attention to its words. Use w > 0 (w = 1: the conditional pass alone).")
    if steps > MAX_MAP_STEPS:
        raise ValueError(f"Attention maps keep every step's maps: at most {MAX_MAP_STEPS} steps, got {steps}.")
    run = model.frames(prompt, negative_prompt=negative_prompt, scale=scale, sampler=sampler, steps=steps,
                       num_images=1, seed=seed)
    timesteps, last = [], None
    with capture(model.unet, 1) as store:
        for last in run:
            timesteps.append(last.t)
            if progress:
                progress(last.i + 1, last.n)
    length = store.sums[0][store.resolutions[0]].shape[1]
    return AttentionResult(model.decode(last.x)[0], tokens, length, store, timesteps, run.notes)


__all__ = ["AttentionStore", "AttentionRecorder", "AttentionResult", "capture", "attention_maps", "check_prompt",
           "cross_attention_layers", "MAX_MAP_STEPS"]
