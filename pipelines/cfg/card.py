"""The model card of a classifier-free guidance checkpoint, rendered from its records."""
from __future__ import annotations

from pathlib import Path

from ..cards import write_card
from ..checkpoints import read_json

SUMMARY = """A class-conditional DDPM for classifier-free guidance (Ho & Salimans 2022), trained here on {data}.
Network: the hand-written `pipelines.cfg.model.ClassConditionalUNet` ({params:,} parameters): {mechanism}. During
training each image's label is replaced, with probability {p}, by a separate learned null label (index
{null}), so one network is both the conditional model ε(x_t, t, y) and the unconditional one ε(x_t, t, ∅).
Sampling combines them as ε̃ = ε(∅) + w·(ε(y) − ε(∅)) (`torch.lerp(uncond, cond, w)`): w = 0 is the
unconditional model, w = 1 the plain conditional one.
Noise schedule: {schedule}{zsnr}; the network predicts {target}; sampling defaults to "{spacing}" timestep spacing."""

EXTRA = """The judge is the shipped `classifier-{dataset}` CNN (test accuracy in its own card); diversity is
the mean pairwise Euclidean distance between the judge's 128-d penultimate features of the samples of one
class, averaged over classes. The quality–diversity sweep is `quality_diversity` in `metrics.json`.
Weights are the EMA weights, stored in fp16."""

DATA_NAMES = {"mnist": "the MNIST training set", "fashion-mnist": "the Fashion-MNIST training set",
              "cifar10": "the CIFAR-10 training set",
              "brightness-mnist": "brightness-varied MNIST (`pipelines.data.brightness_mnist`: random background and "
                                  "ink brightness, plus flat all-black and all-white images as classes 10 and 11)"}
# how the label enters (`conditioning=` of the model; the conditioning lesson trains all four on the same backbone)
MECHANISMS = {
    "add": "the label embedding is added to the timestep embedding and conditions every residual and attention block",
    "concat": "the label enters as a learned per-class map, concatenated to x_t as extra input channels "
              "(conditioning = concat); the blocks see the time embedding alone",
    "cross_attention": "the label is embedded as learned tokens, which the feature maps attend to at 7×7, after each "
                       "self-attention (conditioning = cross-attention); the blocks see the time embedding alone",
    "adaln": "the label embedding is added to the timestep embedding, and that sum sets every norm's scale and shift "
             "and gates every residual branch, zero at the start (conditioning = AdaLN, adaLN-Zero as in DiT)",
}
TARGETS = {"epsilon": "the noise ε", "v_prediction": "the velocity v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x_0"}


def write_cfg_card(folder: str | Path) -> Path:
    folder = Path(folder)
    record, config = read_json(folder / "training_record.json", {}), read_json(folder / "config.json", {})
    dataset = config.get("dataset", record.get("dataset", "?"))
    summary = SUMMARY.format(data=DATA_NAMES.get(dataset, dataset), params=record.get("parameters", 0),
                             mechanism=MECHANISMS[record.get("conditioning") or config.get("conditioning", "add")],
                             p=record.get("p_uncond", 0.1), null=config.get("num_classes", 10),
                             schedule=record.get("schedule", "linear (DDPM)"),
                             zsnr=", rescaled to zero terminal SNR (ᾱ_T = 0)" if record.get("zero_terminal_snr") else "",
                             target=TARGETS[record.get("prediction_type", "epsilon")],
                             spacing=record.get("timestep_spacing", "leading"))
    extra = EXTRA.format(dataset=dataset) + (f"\n\nNote on training: {record['note']}." if record.get("note") else "")
    from .pipeline import CONDITIONING_MODELS
    mechanism = next((m for m, name in CONDITIONING_MODELS.items() if name == folder.name), config.get("conditioning"))
    title = (f"{folder.name}: class-conditional DDPM, the label by {mechanism.replace('_', '-')} (the conditioning "
             "lesson)" if mechanism else f"{folder.name}: class-conditional DDPM for classifier-free guidance")
    return write_card(folder, title, summary, extra)
