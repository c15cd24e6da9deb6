"""Diffusion Lab pipelines: models and maths in pure torch / diffusers / transformers.

Nothing under this package imports gradio; the demos/ package wraps it for the browser.
"""
