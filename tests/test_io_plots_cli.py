"""save/load, pictures, datasets beyond XOR, the command line."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import fastmlp
from fastmlp import plots


def test_save_load_round_trips_bitwise(tmp_path):
    net = fastmlp.MLP((3, 4, 2), bias=True, seed=5, backend="numpy", dtype="float32")
    net.biases = [np.arange(4, dtype=np.float32), np.ones(2, np.float32)]
    net.save(tmp_path / "m.npz")
    again = fastmlp.load(tmp_path / "m.npz")
    assert (again.sizes, again.bias, again.backend, again.dtype) == (net.sizes, True, "numpy", np.float32)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(again.parameters, net.parameters))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]          # no temporary file left


def test_save_load_keeps_the_whole_architecture(tmp_path):
    net = fastmlp.MLP((3, 5, 4, 2), seed=1, activation=["tanh", "relu"], output="softmax",
                      loss="cross_entropy", init="he", backend="numpy")
    net.save(tmp_path / "deep.npz")
    again = fastmlp.load(tmp_path / "deep.npz")
    assert repr(again) == repr(net)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(again.parameters, net.parameters))


def test_files_of_the_first_format_still_load(tmp_path):
    """fastmlp-model-1 (one sigmoid hidden layer, W1, W2, b1, b2 stored by name), as the last release wrote."""
    rng = np.random.default_rng(0)
    W1, W2, b1, b2 = rng.normal(size=(2, 4)), rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=3)
    np.savez(tmp_path / "old.npz", format=np.array("fastmlp-model-1"), sizes=np.array([2, 4, 3]),
             bias=np.array(True), dtype=np.array("float64"), backend=np.array("numpy"), W1=W1, W2=W2, b1=b1, b2=b2)
    net = fastmlp.load(tmp_path / "old.npz")
    assert (net.sizes, net.activations, net.output, net.loss_name) == ((2, 4, 3), ("sigmoid",), "sigmoid", "mse")
    for got, want in zip(net.parameters, [W1, W2, b1, b2]):
        assert np.array_equal(got, want)


def test_truncated_and_foreign_files_are_rejected(tmp_path):
    fastmlp.MLP((2, 3, 2)).save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable fastmlp model file"):
        fastmlp.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        fastmlp.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable fastmlp model file"):
        fastmlp.load(tmp_path / "text.npz")


def test_a_non_finite_network_is_not_saved(tmp_path):
    """save refuses what load would reject, and writes nothing."""
    net = fastmlp.MLP((2, 3, 2))
    net._theta[4] = np.nan
    with pytest.raises(ValueError, match="not all finite"):
        net.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def tampered(tmp_path, **fields):
    """A model file as save writes it, with some fields replaced."""
    net = fastmlp.MLP((3, 4, 2), backend="numpy")
    net.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        original = dict(data)
    np.savez(tmp_path / "bad.npz", **dict(original, **fields))
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("fields, message", [
    (dict(bias=np.array("False")), "bias must be a boolean"),
    (dict(bias=np.array(1)), "bias must be a boolean"),
    (dict(sizes=np.array([3, 4.7, 2])), "sizes must be a list of integers"),
    (dict(sizes=np.array([3, 10**12, 2])), "theta must hold the"),
    (dict(sizes=np.array([3, -4, 2])), "sizes must all be positive"),
    (dict(theta=np.zeros(5)), "theta must hold the 26 parameters"),
])
def test_tampered_model_fields_are_refused_before_allocating(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        fastmlp.load(tampered(tmp_path, **fields))


def test_save_through_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "real.npz"
    fastmlp.MLP((2, 3, 2), seed=1).save(target)
    (tmp_path / "link.npz").symlink_to(target)
    net = fastmlp.MLP((2, 5, 2), seed=2)
    net.save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink()
    assert fastmlp.load(target).sizes == (2, 5, 2)


def test_png_and_gif_have_the_expected_frames(tmp_path, xor_data):
    X, y, _ = xor_data
    net = fastmlp.MLP((2, 5, 2))
    history = net.fit(X, y, lr=2.0, steps=60, eval_every=5, snapshot_every=20, progress=False)
    png = plots.save_png(net, X, y, history, tmp_path / "final.png")
    gif = plots.save_gif(net, X, y, history, tmp_path / "run.gif")
    with Image.open(png) as image:
        assert image.size[0] > 800 and image.size[1] > 300
    with Image.open(gif) as image:
        assert image.n_frames == 4          # steps 0, 20, 40, 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.png", "run.gif"]


@pytest.mark.parametrize("name", ["xor", "moons", "circles", "spirals"])
def test_generators_are_seeded_and_balanced(name):
    make = fastmlp.datasets.GENERATORS[name]
    X, y = make(n=200, seed=4)
    X2, y2 = make(n=200, seed=4)
    assert X.shape == (200, 2) and np.array_equal(X, X2) and np.array_equal(y, y2)
    assert set(np.unique(y)) == {0, 1} and abs(np.mean(y) - 0.5) < 0.15


def test_load_csv_and_its_errors(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 2.0, 3.0], "kind": ["x", "y", "x"]}).to_csv(path, index=False)
    X, y = fastmlp.datasets.load_csv(path, label="kind")
    assert X.tolist() == [[0, 1], [1, 2], [2, 3]] and y.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="label column 'label' not found"):
        fastmlp.datasets.load_csv(path)
    pd.DataFrame({"a": ["p", "q"], "label": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="column 'a' .* is not numeric"):
        fastmlp.datasets.load_csv(path)
    pd.DataFrame({"a": [1.0, None], "label": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing or non-finite value in column 'a', row 1"):
        fastmlp.datasets.load_csv(path)


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastmlp", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_train_end_to_end(tmp_path):
    result = run_cli("train", "--dataset", "moons", "--hidden", "8", "--lr", "2", "--steps", "300",
                     "--gif", "3", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["final.png", "history.csv", "model.npz", "training.gif"]
    assert len(pd.read_csv(tmp_path / "out" / "history.csv")) == 3
    assert fastmlp.load(tmp_path / "out" / "model.npz").sizes == (2, 8, 2)


def test_cli_trains_any_network(tmp_path):
    result = run_cli("train", "--dataset", "spirals", "--hidden", "16,16", "--activation", "relu",
                     "--output", "softmax", "--loss", "cross_entropy", "--init", "he", "--lr", "0.5",
                     "--steps", "200", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    net = fastmlp.load(tmp_path / "out" / "model.npz")
    assert net.sizes[1:3] == (16, 16) and net.activations == ("relu", "relu")
    assert (net.output, net.loss_name, net.init) == ("softmax", "cross_entropy", "he")
    csv = tmp_path / "data.csv"
    pd.DataFrame({"a": np.linspace(-1, 1, 50), "b": np.linspace(0, 1, 50),
                  "label": np.linspace(0, 2, 50)}).to_csv(csv, index=False)
    result = run_cli("train", "--csv", str(csv), "--hidden", "8", "--activation", "tanh", "--output", "identity",
                     "--lr", "0.1", "--steps", "100", "--out", "reg", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "r2" in result.stdout and "r2" in pd.read_csv(tmp_path / "reg" / "history.csv").columns


@pytest.mark.parametrize("args, message", [
    (["train", "--hidden", "8,x"], "expected comma-separated integers"),
    (["train", "--hidden", "4,4", "--activation", "relu,tanh,relu"], "activation must have one name per hidden layer"),
    (["train", "--activation", "mish"], "activation must be one of"),
    (["train", "--output", "identity", "--loss", "cross_entropy"], "needs output='sigmoid' or 'softmax'"),
    (["train", "--lr", "-1"], "lr must be > 0"),
    (["train", "--csv", "missing.csv"], "No such file"),
    (["train", "--steps", "0"], "steps must be >= 1"),
    (["train", "--backend", "torch"], "invalid choice"),
    (["train", "--csv", "."], "is a directory, not a CSV file"),
    (["train", "--csv", "header.csv"], "has a header but no rows"),
    (["train", "--out", "a_file"], "--out a_file is a file"),
    (["train", "--out", "a_file/sub"], "which is a file, not a folder"),
    (["train", "--steps", "1000000000000"], "train in several shorter fits"),
    (["train", "--gif", "-3"], "must be at least 1"),
    (["train", "--gif", "0"], "must be at least 1"),
    (["train", "--output", "identity", "--activation", "relu", "--lr", "1e300", "--steps", "5"],
     "Remedies: a smaller --lr"),
])
def test_cli_fails_cleanly(tmp_path, args, message):
    """A one-line message and exit code 2, before any training where the outputs cannot be written."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "header.csv").write_text("a,b,label\n")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "a_file").read_text() == "not a folder" and not (tmp_path / "runs").exists()


def test_cli_help():
    for command in ([], ["train"], ["demo"]):
        result = subprocess.run([sys.executable, "-m", "fastmlp", *command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: fastmlp" in result.stdout
