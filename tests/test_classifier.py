"""The shipped judges: they load, and their accuracy on real test images holds."""
import pytest
import torch

from pipelines.classifier import JudgeCNN, load_classifier
from pipelines.data import dataset_tensors

BOUNDS = {"mnist": 0.99, "fashion-mnist": 0.90}  # the targets on the real test set


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_judge_accuracy_on_real_test_images(dataset):
    judge = load_classifier(dataset)
    x, y = dataset_tensors(dataset, train=False)
    x, y = x[:3000], y[:3000]
    acc = (judge.predict_proba(x).argmax(-1) == y).float().mean().item()
    assert acc >= BOUNDS[dataset], acc
    assert judge.record["test_accuracy"] >= BOUNDS[dataset]


def test_features_are_the_penultimate_layer():
    torch.manual_seed(0)
    m = JudgeCNN().eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert m.embed(x).shape == (3, 128)
    assert torch.allclose(m.head(m.embed(x)), m(x), atol=1e-5)
