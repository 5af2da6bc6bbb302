"""distill: recovers a pruned student, derives one by width, trains a given one, and is deterministic."""

import copy

import pytest
import torch

from edgefleet import ConfigError, ModelError
from edgefleet.compress import zoo
from edgefleet.compress.passes import get_pass
from edgefleet.compress.state import State, count_parameters
from edgefleet.compress.train import fit, seed_everything

Distill = get_pass("distill")


@pytest.fixture(scope="module")
def teacher(digits_data):
    seed_everything(0)
    return fit(zoo.digits_cnn(width=8, hidden=32), digits_data.x_train, digits_data.y_train, epochs=10, seed=0)


def test_recovers_a_pruned_student(digits_data, teacher):
    state = State.start(copy.deepcopy(teacher), digits_data)
    assert state.val_accuracy() > 95
    get_pass("prune")(amount=0.75).run(state)
    out = Distill(epochs=5).run(state).changed
    assert out["val_accuracy_before"] < 60  # 75% of every group gone: badly hurt
    assert out["val_accuracy_after"] > out["val_accuracy_before"] + 25
    assert out["val_accuracy_after"] > 75
    assert out["params_after"] == out["params_before"] == count_parameters(state.model)


def test_width_derives_a_smaller_student_from_the_current_model(digits_data, teacher):
    state = State.start(copy.deepcopy(teacher), digits_data)
    out = Distill(epochs=5, width=0.5).run(state).changed
    assert out["channels"] == {"features.0": [8, 4], "features.3": [16, 8], "classifier.1": [32, 16]}
    assert out["params_after"] < 0.35 * out["params_before"]
    assert out["val_accuracy_after"] > out["val_accuracy_before"] and out["val_accuracy_after"] > 85
    assert count_parameters(teacher) == out["params_before"]  # the teacher was not touched


def test_given_student_without_labels(digits_data, teacher):
    state = State.start(copy.deepcopy(teacher), digits_data)
    out = Distill(epochs=3, student="edgefleet.compress.zoo:digits_cnn", use_labels=False).run(state).changed
    assert out["student"] == "edgefleet.compress.zoo:digits_cnn"
    assert out["val_accuracy_after"] > 80 > out["val_accuracy_before"]
    assert count_parameters(state.model) == 151402


def test_deterministic_given_the_seed(digits_data, teacher):
    runs = []
    for _ in range(2):
        state = State.start(copy.deepcopy(teacher), digits_data, seed=3)
        Distill(epochs=1, width=0.5).run(state)
        runs.append(state.model.state_dict())
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_student_that_does_not_fit_the_data(digits_data, teacher):
    state = State.start(copy.deepcopy(teacher), digits_data)
    with pytest.raises(ModelError, match="student"):
        Distill(epochs=1, student="tests.fixtures.models:tabular").run(state)
    with pytest.raises(ModelError, match="student: .*has no attribute 'no_such_model'"):
        Distill(epochs=1, student="edgefleet.compress.zoo:no_such_model").run(state)


@pytest.mark.parametrize("kw, name", [
    ({"epochs": 0}, "epochs"), ({"alpha": 1.5}, "alpha"), ({"temperature": -1.0}, "temperature"),
    ({"use_labels": 1}, "use_labels"), ({"student": "no_colon"}, "student"), ({"width": 0.0}, "width"),
    ({"lr": "fast"}, "lr"),
])
def test_bad_params_are_config_errors(kw, name):
    with pytest.raises(ConfigError, match=f"distill.{name}"):
        Distill(**kw)


def test_student_and_width_exclude_each_other():
    with pytest.raises(ConfigError, match="student or width"):
        Distill(student="a.b:c", width=0.5)
    assert Distill().backoff() is None
