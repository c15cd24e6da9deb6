"""Classifier-free guidance: a hand-written class-conditional UNet, its trainer, sampler and evaluation."""
