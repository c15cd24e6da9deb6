"""The inference engines the benchmark compares with (pipelines/measure/peers.py): an exported network behind the
pipeline's call gives our images; the benchmark skips the rows, saying why, where the engines are not installed."""
import dataclasses

import pytest
import torch

from pipelines.measure import peers


class Tiny(torch.nn.Module):
    """A stand-in for the CFG lesson's UNet: f(x, t, labels), with the attributes the pipeline reads."""
    null_label = 10

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.emb = torch.nn.Embedding(11, 1)
        self.config = {"in_channels": 1, "image_size": 8}

    def forward(self, x, t, labels):
        return self.conv(x) * (t.float()[:, None, None, None] / 1000) + self.emb(labels)[:, :, None, None]


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_an_exported_network_behind_the_call_answers_as_the_original(engine, tmp_path):
    pytest.importorskip(engine)
    net = Tiny().eval()
    example = (torch.randn(4, 1, 8, 8), torch.full((4,), 500), torch.arange(4))
    with torch.no_grad():
        run, name = (peers.export_onnx(net, example, tmp_path, 1) if engine == "onnxruntime"
                     else peers.export_openvino(net, example, 1))
    batch = lambda x, t, y: (x, torch.as_tensor(t).reshape(-1).expand(y.shape[0]).long(), y)  # noqa: E731
    wrapped = peers.Engine(name, run, net, batch)
    assert wrapped.null_label == 10 and wrapped.config["image_size"] == 8   # what the pipeline reads, delegated
    assert not list(wrapped.parameters())                                    # the original's weights are not its own
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 10, 10, 10])    # another batch size: dynamic axis
    with torch.no_grad():
        expected = net(x, torch.full((6,), 250), y)
    got = wrapped(x, torch.tensor(250), y)                                   # one t for the batch, as samplers call
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(wrapped(x, torch.tensor(900), y), expected)   # t reaches the engine


def test_the_benchmark_skips_the_rows_and_says_why_without_the_engines(monkeypatch, capsys):
    import builtins
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(
        ImportError(name=name)) if name == "openvino" else real(name, *a, **k))
    assert peers.rows(dataclasses.make_dataclass("Args", [("threads", int), ("repeats", int)])(1, 1)) == []
    assert "requirements-peers.txt" in capsys.readouterr().out
