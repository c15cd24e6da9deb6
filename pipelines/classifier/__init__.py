"""Judge classifiers trained here on real data: they check class-conditional samples and give
the offline feature network for FID / IS ("MNIST classifier features")."""
from .model import JudgeCNN, load_classifier  # noqa: F401
