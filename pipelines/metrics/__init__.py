"""FID and Inception Score, hand-written (they are the lesson), with the feature networks they need.

    fid.py              Fréchet distance between Gaussians, gaussian_stats, fid_from_features
    inception_score.py  IS = exp(E_x KL(p(y|x) ‖ p(y))) over splits
    features.py         feature networks (judge classifiers, Inception-v3) behind one interface
    scoring.py          a set of images -> FID vs the real test split + IS, and the real floors
"""
from .fid import FIDNumericalError, GaussianStats, fid_from_features, fid_from_stats, frechet_distance, gaussian_stats  # noqa: F401
from .inception_score import inception_score  # noqa: F401
