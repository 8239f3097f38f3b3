"""Training logs: Keras CSVLogger, Lightning CSVLogger and TensorBoard event files."""

import math

import numpy as np
import pytest

from evallib.errors import DataError
from evallib.plots import plot_training_curves
from evallib.training_log import read_training_log


def test_keras_csv(tmp_path):
    f = tmp_path / "training.csv"
    f.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.45,1.3\n1,0.7,0.8,0.6,0.9\n2,0.8,0.5,0.7,0.7\n")
    log = read_training_log(f)
    assert log == {"epoch": [0, 1, 2], "accuracy": [0.5, 0.7, 0.8], "loss": [1.2, 0.8, 0.5],
                   "val_accuracy": [0.45, 0.6, 0.7], "val_loss": [1.3, 0.9, 0.7]}
    loss_ax, metric_ax = plot_training_curves(log)
    assert {line.get_label() for line in loss_ax.get_lines()} == {"loss", "val_loss"}
    assert {line.get_label() for line in metric_ax.get_lines()} == {"accuracy", "val_accuracy"}


def test_lightning_csv_rows_per_step_are_folded_per_epoch(tmp_path):
    f = tmp_path / "metrics.csv"
    f.write_text("epoch,step,train_loss,val_loss,val_acc\n"
                 "0,9,1.5,,\n0,19,1.1,,\n0,19,,1.2,0.5\n1,29,0.9,,\n1,39,0.7,,\n1,39,,0.8,0.7\n2,49,0.6,,\n")
    log = read_training_log(f)
    assert log["epoch"] == [0, 1, 2]
    assert log["train_loss"] == [1.1, 0.7, 0.6]  # the last value logged in each epoch
    assert log["val_loss"][:2] == [1.2, 0.8] and math.isnan(log["val_loss"][2])


def test_tensorboard_event_files(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(tmp_path / "tb"))
    for step in range(4):
        w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_scalar("val/accuracy", 0.5 + 0.1 * step, step)
    w.close()
    log = read_training_log(tmp_path / "tb")
    assert log["epoch"] == [0, 1, 2, 3]
    np.testing.assert_allclose(log["loss"], [1.0, 0.5, 1 / 3, 0.25], rtol=1e-6)
    np.testing.assert_allclose(log["val/accuracy"], [0.5, 0.6, 0.7, 0.8], rtol=1e-6)


def test_errors(tmp_path):
    with pytest.raises(DataError, match=r"report\.training_log: expected a CSV or TensorBoard log; got no file at"):
        read_training_log(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("step,loss\n1,0.5\n")
    with pytest.raises(DataError, match=r"expected a CSV with an 'epoch' column .*; got columns \['step', 'loss'\]"):
        read_training_log(tmp_path / "bad.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"expected TensorBoard event files \(\*tfevents\*\) in the folder; got none"):
        read_training_log(tmp_path / "empty")
