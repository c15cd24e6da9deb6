"""Captioned coloured shapes: the text-to-image data made here (`data`), and the attribute judge of
prompt adherence trained on it (`judge`, `train_judge`, `evaluate_judge`)."""
from .data import ATTRIBUTE_NAMES, ATTRIBUTES, CaptionedImages, ImageCaptionFolder, ShapesDataset, shapes_tensors

__all__ = ["ATTRIBUTES", "ATTRIBUTE_NAMES", "CaptionedImages", "ImageCaptionFolder", "ShapesDataset", "shapes_tensors"]
