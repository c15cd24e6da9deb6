"""Text to image by latent diffusion: the shapes model trained here and real Stable Diffusion, one pipeline.

    from pipelines.ldm.pipeline import load_ldm, load_sd
    model = load_ldm()                                     # checkpoints/ldm-shapes (trained here)
    x = model.generate("a small red circle on the left, black background", scale=3.0, num_images=4)
    sd = load_sd("path/to/stable-diffusion-v1-5")          # a diffusers SD folder, or a hub id when online

`LatentDiffusion.frames` reads top to bottom, like Stable Diffusion's own pipeline:

    1. encode the prompt and the negative prompt with the same text encoder; the negative prompt's token states
       replace those of "" as the unconditional condition ∅ (repeated to the batch, same dtype and device)
    2. set the timesteps: a diffusers scheduler built from the checkpoint's config and the user's controls
       (sampler, zero terminal SNR, timestep spacing; the prediction type is the checkpoint's)
    3. draw the random latents z_T ~ N(0, I) from a seeded CPU generator
    4. denoise: `sampling.denoise` with `guidance.guided_predictor`, the conditional and unconditional passes in ONE
       batched UNet call:  ṽ = v_θ(z_t, ∅) + w·(v_θ(z_t, c) − v_θ(z_t, ∅)), optionally φ-rescaled
    5. decode with the VAE:  x = D(z_0 / s),  s the VAE's latent scaling factor

Every step yields the latents and the predicted ẑ_0, which `decode` turns into the picture the model is aiming for.
Real SD checkpoints load through `StableDiffusionPipeline.from_pretrained` and then run through these same five
steps (its CLIP text encoder via `encode_prompt`, its UNet, its VAE, its scheduler config with the controls
applied; φ is what diffusers calls `guidance_rescale`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from ..checkpoints import CheckpointCorrupt, CheckpointMissing, checkpoint_dir, load_pretrained, read_json, weights_hash
from ..guidance import guided_predictor
from ..precision import FP32, Precision, choose
from ..runtime import cpu_generator, pick_device, randn
from ..sampling import Run, denoise
from ..text_encoder import non_ascii_note
from ..schedules import SPACINGS, make_scheduler
from ..vae.model import slerp
from . import NAME, TRAIN_COMMAND

SAMPLERS = ("DDIM", "DPM-Solver++ (multistep)", "UniPC (multistep)")
MAX_IMAGES, MAX_SD_IMAGES_CPU, MAX_SCALE, MAX_STRIP = 16, 4, 30.0, 10
MAX_STEPS = 100  # denoising steps per request: the pipeline's check and the text-to-image tab's sliders
SD_EXAMPLES = {  # hub ids the picker suggests (downloaded once when online; any diffusers SD folder works)
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "SD 1.5: ε-prediction, 512 px",
    "stabilityai/stable-diffusion-2-1": "SD 2.1: v-prediction, 768 px",
    "ByteDance/sd2.1-base-zsnr-laionaes5": "SD 2.1-base fine-tuned with zero terminal SNR (Lin et al.), 512 px",
}


class StableDiffusionMissing(CheckpointMissing):
    """Stable Diffusion weights that are not on this machine; the message names what to download and where."""

    def __init__(self, spec: str, detail: str = ""):
        hub_id = spec if looks_like_hub_id(spec) else "stable-diffusion-v1-5/stable-diffusion-v1-5"
        FileNotFoundError.__init__(
            self, f"Stable Diffusion weights {spec!r} are not on this machine{': ' + detail if detail else ''}. "
                  f"Download a diffusers Stable Diffusion checkpoint once, on a machine with internet, e.g. "
                  f"`hf download {hub_id} --local-dir models/{hub_id.split('/')[-1]}` and type that folder here; or "
                  f"run the app online (HF_HUB_OFFLINE unset) with the hub id, and it is cached in the Hugging Face cache. "
                  "The shipped shapes model keeps working meanwhile.")
        self.name, self.train_command = spec, f"hf download {hub_id}"


def looks_like_hub_id(spec: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec or "")) and not spec.startswith((".", "/"))


# ----------------------------------------------------------------------------- conditions
def pack(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The condition the UNet's forward reads: token states, with the attention mask as one extra feature (when the
    model masks padding), so cond and uncond each travel as one tensor through `guided_predictor`."""
    return hidden if mask is None else torch.cat([hidden, mask.unsqueeze(-1).to(hidden.dtype)], -1)


def unpack(c: torch.Tensor, masked: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    return (c[..., :-1], c[..., -1]) if masked else (c, None)


@dataclass
class PromptEmbeds:
    """Step 1's result: token states of the prompt (cond) and of the negative prompt (uncond), batch-aligned."""
    cond: torch.Tensor                    # (B, L, D)
    uncond: torch.Tensor                  # (B, L, D): the negative prompt ("" by default), repeated to the batch
    cond_mask: torch.Tensor | None        # (B, L) 1 = token, 0 = padding (None: the model reads every position)
    uncond_mask: torch.Tensor | None
    notes: list[str] = field(default_factory=list)

    def conditions(self) -> tuple[torch.Tensor, torch.Tensor]:
        return pack(self.cond, self.cond_mask), pack(self.uncond, self.uncond_mask)


def _relabel(notes: list[str], label: str) -> list[str]:
    return [label + n[len("The prompt"):] if n.startswith("The prompt") else n for n in notes]


# ----------------------------------------------------------------------------- the model
@dataclass
class LatentDiffusion:
    """VAE + frozen text encoder + conditional UNet + noise schedule, of the shapes model or of a real SD checkpoint."""
    unet: torch.nn.Module
    vae: torch.nn.Module
    encode_text: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor | None, list[str]]]  # prompts -> states
    scheduler_config: dict
    name: str
    kind: str                            # "shapes" (trained here) or "stable-diffusion"
    path: Path | str
    device: torch.device
    dtype: torch.dtype = torch.float32
    record: dict = field(default_factory=dict)
    uses_mask: bool = True               # does the UNet mask the padding tokens (ours) or read all (SD)?
    # prompt -> (its tokens as the encoder reads them, special tokens included; the encoder's limit; truncated?)
    tokenize: Callable[[str], tuple[list[str], int, bool]] | None = None
    precision: Precision = FP32          # autocast of the UNet and the VAE decoder (pipelines/precision.py)

    # ---- what the checkpoint is
    @property
    def latent_channels(self) -> int:
        return self.unet.config.in_channels

    @property
    def latent_size(self) -> int:
        size = self.unet.config.sample_size
        return size if isinstance(size, int) else size[0]

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self) -> int:
        return self.latent_size * self.vae_scale_factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    @property
    def zero_snr(self) -> bool:
        return bool(self.scheduler_config.get("rescale_betas_zero_snr", False))

    @property
    def spacing(self) -> str:
        return self.scheduler_config.get("timestep_spacing", "leading")

    @property
    def max_images(self) -> int:
        return MAX_SD_IMAGES_CPU if self.kind == "stable-diffusion" and self.device.type == "cpu" else MAX_IMAGES

    @property
    def parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"unet": count(self.unet), "vae": count(self.vae)}

    @property
    def weights_hash(self) -> str:
        return weights_hash(self.path) if self.kind == "shapes" else str(self.name)

    # ---- step 1: prompt and negative prompt -> token states
    def encode_prompt(self, prompt: str | list[str], negative_prompt: str = "", num_images: int = 1) -> PromptEmbeds:
        """Token states of the prompt(s) and of the negative prompt, produced by the same encoder call.

        A str prompt is repeated `num_images` times; a list gives one image per prompt. The negative prompt
        ("" = plain unconditional) replaces ∅: it is encoded exactly like the prompt, then repeated to the batch
        and put in the prompt states' dtype and device."""
        prompts = [prompt] * int(num_images) if isinstance(prompt, str) else prompt
        if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("The prompt must be text (an empty prompt is allowed: it means unconditional).")
        if not isinstance(negative_prompt, str):
            raise ValueError("The negative prompt must be text (leave it empty for the plain unconditional model).")
        prompts, unique = list(prompts), list(dict.fromkeys(prompts))
        hidden, mask, notes = self.encode_text(unique)
        rows = torch.tensor([unique.index(p) for p in prompts], device=hidden.device)
        cond, cond_mask = hidden[rows], None if mask is None else mask[rows]
        notes = [n for p in unique[:1] for n in non_ascii_note(p, "The prompt")] + notes
        neg, neg_mask, neg_notes = self.encode_text([negative_prompt])
        notes += _relabel([n for n in neg_notes if "is empty" not in n], "The negative prompt")
        notes += non_ascii_note(negative_prompt, "The negative prompt")
        uncond = neg.expand(len(cond), -1, -1).to(dtype=cond.dtype, device=cond.device)
        uncond_mask = None if neg_mask is None else neg_mask.expand(len(cond), -1).to(cond_mask.device)
        return PromptEmbeds(cond, uncond, cond_mask, uncond_mask, notes)

    # ---- step 2: the scheduler from the checkpoint's config and the controls
    def make_scheduler(self, sampler: str = "DDIM", zero_snr: bool | None = None, spacing: str | None = None):
        """(scheduler, notes). zero_snr / spacing None keep the checkpoint's own; the prediction type is always the
        checkpoint's (it is what the UNet outputs)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"Sampler must be one of {list(SAMPLERS)}, got {sampler!r}.")
        if spacing is not None and spacing not in SPACINGS:
            raise ValueError(f"Timestep spacing must be one of {list(SPACINGS)}, got {spacing!r}.")
        zero_snr = self.zero_snr if zero_snr is None else bool(zero_snr)
        spacing = spacing or self.spacing
        notes = []
        if zero_snr and self.prediction_type == "epsilon":
            notes.append("Zero terminal SNR with an ε-prediction model: at t = T, x̂₀ = (z_T − σ·ε̂)/sqrt(ᾱ_T) divides "
                         "by (almost) zero. Expect broken images; zero SNR needs v-prediction.")
        if zero_snr != self.zero_snr:
            notes.append(f"This model was trained {'with' if self.zero_snr else 'without'} zero terminal SNR; sampling "
                         f"{'with' if zero_snr else 'without'} it uses a different noise schedule than training.")
        if zero_snr and spacing == "leading":
            notes.append("\"leading\" spacing never starts at t = T, so zero terminal SNR is not used where it matters; "
                         "use \"trailing\".")
        overrides = {"rescale_betas_zero_snr": zero_snr, "timestep_spacing": spacing,
                     "prediction_type": self.prediction_type}
        return make_scheduler(sampler, self.scheduler_config, **overrides), notes

    # ---- step 3: seeded random latents
    def latent_shape(self, num_images: int) -> tuple[int, int, int, int]:
        return (int(num_images), self.latent_channels, self.latent_size, self.latent_size)

    def initial_latents(self, seed: int, num_images: int = 1) -> torch.Tensor:
        """z_T ~ N(0, I) from a CPU generator seeded with `seed`: exactly what `sampling.denoise` draws."""
        return randn(self.latent_shape(num_images), cpu_generator(seed), self.device)

    # ---- step 4: the UNet as `forward(z, t, c)` for the guided predictor
    def forward(self, z: torch.Tensor, t, c: torch.Tensor) -> torch.Tensor:
        hidden, mask = unpack(c, self.uses_mask)
        with self.precision.autocast():  # bf16 where the hardware has it
            out = self.unet(z.to(self.dtype), t, encoder_hidden_states=hidden.to(self.dtype),
                            encoder_attention_mask=mask).sample
        return out.float()

    # ---- step 5: latents -> images
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """x = D(z / s) in [-1, 1], float32 on the CPU (non-finite latents stay non-finite: callers decide)."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        out = []
        for i in range(0, len(latents), batch_size):
            z = latents[i:i + batch_size].to(self.device, self.vae.dtype) / self.scaling_factor + shift
            with self.precision.autocast():
                out.append(self.vae.decode(z).sample.float().cpu())
        return torch.cat(out).clamp(-1, 1)

    # ---- the five steps
    def check(self, scale, steps, num_images) -> tuple[float, int, int]:
        scale, steps, num_images = float(scale), int(steps), int(num_images)
        if not 0 <= scale <= MAX_SCALE:
            raise ValueError(f"CFG scale w must be between 0 and {MAX_SCALE:g}, got {scale:g}.")
        if not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"Steps must be between 1 and {MAX_STEPS}, got {steps}.")
        if not 1 <= num_images <= self.max_images:
            raise ValueError(f"Number of images must be between 1 and {self.max_images} for {self.name}, "
                             f"got {num_images}.")
        return scale, steps, num_images

    def frames(self, prompt: str | list[str] | None, *, negative_prompt: str = "", scale: float = 3.0,
               rescale: float = 0.0, sampler: str = "DDIM", steps: int = 20, num_images: int = 4, seed: int = 0,
               spacing: str | None = None, zero_snr: bool | None = None, embeds: PromptEmbeds | None = None,
               x_T: torch.Tensor | None = None) -> Run:
        """A `sampling.Run`: one `sampling.Step` per reverse step (latents `x`, predicted ẑ_0 `denoised`); its `notes`
        are the prompt's and the schedule's, its `info` the prompt embeddings and the scheduler.

        `embeds` / `x_T` replace steps 1 / 3 (prompt interpolation / seed interpolation)."""
        n = len(prompt) if isinstance(prompt, list) else num_images
        n = len(embeds.cond) if embeds is not None else n
        scale, steps, n = self.check(scale, steps, n)
        if not 0 <= float(rescale) <= 1:
            raise ValueError(f"Guidance rescale φ must be between 0 and 1, got {rescale}.")
        # 1. encode the prompt and the negative prompt (the negative one replaces "" as the unconditional condition)
        embeds = embeds or self.encode_prompt(prompt, negative_prompt, n)
        cond, uncond = embeds.conditions()
        # 2. the timesteps: the checkpoint's scheduler config with the user's sampler / zero SNR / spacing
        scheduler, notes = self.make_scheduler(sampler, zero_snr, spacing)
        # 3. z_T ~ N(0, I) from a seeded CPU generator (inside `denoise` unless given)
        if x_T is not None:
            x_T = x_T.to(self.device, torch.float32) * scheduler.init_noise_sigma
        # 4. denoise with classifier-free guidance: cond + uncond in one batched UNet call, optional φ-rescale
        predict = guided_predictor(self.forward, cond, uncond, scale, float(rescale))
        it = denoise(predict, scheduler, self.latent_shape(n), steps, cpu_generator(seed), self.device, x_T=x_T)
        return Run(it, embeds.notes + notes, embeds=embeds, scheduler=scheduler)

    def generate(self, prompt, **kwargs) -> torch.Tensor:
        """Final images (n, 3, H, W) in [-1, 1] on the CPU (5. decoded with the VAE); the keywords of `frames`."""
        return self.decode(self.frames(prompt, **kwargs).last().x)

    # ---- the lesson's extras
    def sweep(self, prompt: str, scales=(0, 1, 3, 7), *, negative_prompt: str = "", progress=None,
              num_images: int = 4, **kwargs) -> torch.Tensor:
        """(len(scales), num_images, 3, H, W): every w starts from the same z_T (same seed), only w changes."""
        embeds = self.encode_prompt(prompt, negative_prompt, num_images)
        out = []
        for k, w in enumerate(scales):
            out.append(self.generate(prompt, negative_prompt=negative_prompt, scale=w, num_images=num_images,
                                     embeds=embeds, **kwargs))
            if progress:
                progress(k + 1, len(scales))
        return torch.stack(out)

    def interpolate_prompts(self, prompt_a: str, prompt_b: str, n: int = 6, negative_prompt: str = "",
                            seed: int = 0, **kwargs) -> tuple[torch.Tensor, list[str]]:
        """(images (n, 3, H, W), notes): the same z_T for every frame; the condition moves linearly from prompt a's
        token states to prompt b's, c(λ) = (1 − λ)·c_a + λ·c_b. The ends are exactly the two prompts; between them
        the UNet reads the tokens of either prompt (the union of the two masks)."""
        n = _strip_length(n)
        a, b = self.encode_prompt(prompt_a, negative_prompt, 1), self.encode_prompt(prompt_b, negative_prompt, 1)
        lams = torch.linspace(0, 1, n, device=a.cond.device).view(-1, 1, 1)
        cond = torch.lerp(a.cond, b.cond, lams.to(a.cond.dtype))
        mask = None
        if a.cond_mask is not None:
            union = torch.maximum(a.cond_mask, b.cond_mask)
            mask = torch.cat([a.cond_mask] + [union] * (n - 2) + [b.cond_mask])
        uncond_mask = None if a.uncond_mask is None else a.uncond_mask.expand(n, -1)
        embeds = PromptEmbeds(cond, a.uncond.expand(n, -1, -1), mask, uncond_mask,
                              a.notes + _relabel(b.notes, "The second prompt"))
        x_T = self.initial_latents(seed, 1).expand(n, -1, -1, -1)
        images = self.generate(None, embeds=embeds, x_T=x_T, num_images=n, seed=seed, **kwargs)
        return images, embeds.notes

    def interpolate_seeds(self, prompt: str, seed_a: int, seed_b: int, n: int = 6, negative_prompt: str = "",
                          **kwargs) -> tuple[torch.Tensor, list[str]]:
        """(images, notes): one prompt, z_T moving from seed a's noise to seed b's along the great circle (slerp),
        so every frame's z_T stays a typical Gaussian sample (a straight line would pass near the origin)."""
        n = _strip_length(n)
        x_T = seed_slerp(self.initial_latents(seed_a, 1), self.initial_latents(seed_b, 1), n)
        embeds = self.encode_prompt(prompt, negative_prompt, n)
        images = self.generate(None, embeds=embeds, x_T=x_T, num_images=n, seed=seed_a, **kwargs)
        return images, embeds.notes


def seed_slerp(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """n latents from z_a (λ = 0) to z_b (λ = 1) by spherical interpolation (`pipelines.vae.model.slerp`)."""
    lams = torch.linspace(0, 1, n)
    return slerp(z_a.flatten().float(), z_b.flatten().float(), lams).view(n, *z_a.shape[1:]).to(z_a)


def _strip_length(n) -> int:
    n = int(n)
    if not 2 <= n <= MAX_STRIP:
        raise ValueError(f"An interpolation strip has between 2 and {MAX_STRIP} frames, got {n}.")
    return n


def channel_view(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) latents -> (B, C, h, w) in [-1, 1] to show each channel as a grey image. Scaled latents have
    unit variance, so a fixed ±3 range keeps frames comparable along the reverse process (no per-frame rescaling)."""
    return torch.nan_to_num(latents.detach().float().cpu() / 3).clamp(-1, 1)


# ----------------------------------------------------------------------------- loading: the shapes model
@lru_cache(maxsize=2)
def load_ldm(name: str = NAME, device: str | None = None) -> LatentDiffusion:
    """The shipped shapes model (checkpoints/<name>): CheckpointMissing when absent (with the training commands),
    CheckpointCorrupt when present but unreadable. Only a fully loaded model is cached."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ..text_encoder import HIDDEN_SIZE, MAX_LENGTH, load_text_encoder

    path = checkpoint_dir(name, TRAIN_COMMAND, required="unet/config.json")
    missing = [p for p in ("vae/config.json", "scheduler/scheduler_config.json") if not (path / p).is_file()]
    if missing:
        raise CheckpointCorrupt(f"The checkpoint folder {path} is incomplete (no {', '.join(missing)}). "
                                f"Retrain it with:  {TRAIN_COMMAND}")
    try:
        unet = load_pretrained(UNet2DConditionModel, path / "unet")
        vae = load_pretrained(AutoencoderKL, path / "vae")
        scheduler_config = read_json(path / "scheduler" / "scheduler_config.json")
        text_info = read_json(path / "text_encoder.json", {})
        if unet.config.cross_attention_dim != HIDDEN_SIZE or vae.config.latent_channels != unet.config.in_channels:
            raise ValueError("the UNet, the VAE and the text encoder do not fit together")
    except Exception as exc:  # damaged JSON, truncated weights, mismatched parts: say so, keep nothing
        raise CheckpointCorrupt(f"The checkpoint folder {path} could not be loaded ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Retrain it with:  "
                                f"{TRAIN_COMMAND}  (or restore the shipped files: git checkout -- checkpoints/{name})"
                                ) from None
    device = pick_device(device)
    encoder = load_text_encoder(device, text_info.get("max_length", MAX_LENGTH))  # TextEncoderMissing if absent

    def encode_text(prompts):
        e = encoder.encode(prompts)
        return e.hidden, e.mask, e.notes

    def tokenize(prompt):
        enc, _, _, truncated = encoder.tokenize(prompt)
        ids = enc["input_ids"][0][enc["attention_mask"][0].bool()]
        return encoder.tokenizer.convert_ids_to_tokens(ids.tolist()), encoder.max_length, truncated[0]

    return LatentDiffusion(unet.to(device).eval(), vae.to(device).eval(), encode_text, scheduler_config, name,
                           "shapes", path, device, torch.float32, read_json(path / "training_record.json", {}), True,
                           tokenize, choose(device, model=name))


# ----------------------------------------------------------------------------- loading: real Stable Diffusion
def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _sd_text_notes(tokenizer, prompts: list[str]) -> list[str]:
    notes, limit = [], tokenizer.model_max_length
    for i, p in enumerate(prompts):
        label = "The prompt" if len(prompts) == 1 else f"Prompt {i + 1}"
        if not p.strip():
            notes.append(f"{label} is empty: that means unconditional generation (no text guidance).")
            continue
        ids = tokenizer(p, truncation=False)["input_ids"]
        if len(ids) > limit:
            notes.append(f"{label} is longer than the text encoder reads ({limit - 2} tokens): it was truncated; "
                         f"ignored from: \"{tokenizer.decode(ids[limit - 1:limit + 11])}…\".")
    return notes


def sd_dtype(device: torch.device) -> torch.dtype:
    """fp16 on a CUDA GPU (half the memory, tensor cores), fp32 elsewhere (CPU fp16 is slow and MPS fp16 unreliable)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


@lru_cache(maxsize=1)
def load_sd(spec: str, device: str | None = None) -> LatentDiffusion:
    """A real Stable Diffusion checkpoint (a diffusers folder with model_index.json, or a hub id when online)
    loaded with `StableDiffusionPipeline.from_pretrained`: fp16 on a GPU, fp32 on the CPU. Raises
    StableDiffusionMissing (what to download, and where) or CheckpointCorrupt; nothing half-loaded is kept."""
    from diffusers import StableDiffusionPipeline

    spec = str(spec or "").strip()
    if not spec:
        raise ValueError("Type a Stable Diffusion checkpoint: a local diffusers folder or a hub id like "
                         f"{next(iter(SD_EXAMPLES))}.")
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise CheckpointCorrupt(f"{spec} is not a diffusers Stable Diffusion folder (it has no model_index.json). "
                                    "Point to the folder that holds model_index.json, unet/, vae/, text_encoder/, "
                                    "tokenizer/ and scheduler/.")
        source, local_only = str(path), True
    elif looks_like_hub_id(spec):
        source, local_only = spec, _offline()
    else:
        raise StableDiffusionMissing(spec, "there is no such folder, and it is not a hub id of the form owner/name")
    device = pick_device(device)
    dtype = sd_dtype(device)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(source, dtype=dtype, safety_checker=None,
                                                       requires_safety_checker=False, local_files_only=local_only,
                                                       low_cpu_mem_usage=False)
    except (OSError, EnvironmentError) as exc:   # not cached offline, no such repo, missing files
        if path.exists():
            raise CheckpointCorrupt(f"The Stable Diffusion folder {spec} could not be loaded: "
                                    f"{str(exc).splitlines()[0][:240]}") from None
        raise StableDiffusionMissing(spec, "offline, and not in the local cache" if local_only
                                     else str(exc).splitlines()[0][:200]) from None
    except Exception as exc:  # damaged configs or weights
        raise CheckpointCorrupt(f"The Stable Diffusion checkpoint {spec} could not be loaded ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}).") from None
    if not all(getattr(pipe, part, None) is not None for part in ("unet", "vae", "text_encoder", "tokenizer")):
        raise CheckpointCorrupt(f"{spec} lacks one of unet / vae / text_encoder / tokenizer.")
    pipe = pipe.to(device)
    if dtype == torch.float16 and getattr(pipe.vae.config, "force_upcast", False):
        pipe.vae.to(torch.float32)   # as diffusers does: SD's VAE decoder can overflow in fp16
    pipe.set_progress_bar_config(disable=True)

    def encode_text(prompts):
        # diffusers' own prompt encoding (CLIP, padded to 77 tokens); the negative prompt goes through it too
        hidden, _ = pipe.encode_prompt(prompts, device, 1, False)
        return hidden, None, _sd_text_notes(pipe.tokenizer, prompts)

    def tokenize(prompt):
        tok = pipe.tokenizer
        ids = tok(prompt, truncation=False)["input_ids"]
        return tok.convert_ids_to_tokens(ids[:tok.model_max_length]), tok.model_max_length, \
            len(ids) > tok.model_max_length

    config = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    return LatentDiffusion(pipe.unet.eval(), pipe.vae.eval(), encode_text, config, spec, "stable-diffusion", spec,
                           device, dtype, {}, uses_mask=False, tokenize=tokenize,
                           precision=choose(device) if dtype == torch.float32 else
                           Precision("fp16", device.type, "Stable Diffusion's weights loaded in fp16"))


def load_model(choice: str = NAME, device: str | None = None) -> LatentDiffusion:
    """The shipped model by name, or a Stable Diffusion folder / hub id."""
    return load_ldm(choice, device) if choice == NAME else load_sd(choice, device)


__all__ = ["LatentDiffusion", "PromptEmbeds", "load_ldm", "load_sd", "load_model", "seed_slerp",
           "channel_view", "SAMPLERS", "SD_EXAMPLES", "MAX_IMAGES", "MAX_STEPS", "MAX_SCALE",
           "MAX_STRIP", "StableDiffusionMissing"]
