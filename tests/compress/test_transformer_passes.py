"""Transformer passes on a tiny BERT (the MiniLM class at small width): attention heads and FFN
neurons pruned, a factorised embedding, a shallower student distilled from hidden states; each
leaves a smaller model that runs, captures and exports; bad requests are refused with a message."""

import numpy as np
import pytest
import torch

from edgefleet import ConfigError, ModelError
from edgefleet.compress.data import Dataset
from edgefleet.compress.passes import get_pass
from edgefleet.compress.state import State, count_parameters
from edgefleet.compress.zoo import minilm

SEQ, VOCAB, HIDDEN, HEADS = 12, 60, 48, 6  # head_dim 8


def tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    model = minilm.MiniLM(vocab=VOCAB, hidden=HIDDEN, layers=4, heads=HEADS, ffn=64, seq_len=SEQ)
    with torch.no_grad():
        model.position.normal_(0, 0.5)
    return model.eval()


def token_data(n: int = 96, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    def split(k):
        lengths = rng.integers(3, SEQ + 1, k)
        mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
        return {"input_ids": (rng.integers(1, VOCAB, (k, SEQ)) * mask).astype(np.int64), "attention_mask": mask}
    return Dataset("tokens", split(n), None, split(32), None, split(32), None, task="embedding")


@pytest.fixture
def state():
    return State.start(tiny_bert(), token_data())


def _runs_and_captures(state):
    x = state.data.x_val
    out = state.model(torch.from_numpy(x["input_ids"]), torch.from_numpy(x["attention_mask"]))
    assert out.shape == (32, HIDDEN) and torch.isfinite(out).all()
    graph = state.capture()
    assert graph.values[graph.outputs[0]].shape == (None, HIDDEN)


def test_heads_and_ffn_neurons_are_removed_by_importance(state):
    changed = get_pass("prune_heads")(heads=2, ffn=0.5, samples=64).run(state).changed
    for layer in state.model.layers:
        att = layer.attention
        assert att.heads == 4 and att.query.out_features == att.key.out_features == att.value.out_features == 32
        assert (att.output.in_features, att.output.out_features) == (32, HIDDEN)
        assert layer.intermediate.out_features == layer.out.in_features == 32
    removed_per_layer = 3 * (16 * HIDDEN + 16) + HIDDEN * 16 + 32 * (HIDDEN + 1) + HIDDEN * 32
    assert changed["params_before"] - changed["params_after"] == 4 * removed_per_layer
    assert changed["layers"]["layers.0"]["heads_before"] == HEADS and len(changed["layers"]["layers.0"]["heads"]) == 4
    _runs_and_captures(state)


def test_the_weakest_head_goes_first():
    """A head whose output weights are zero contributes nothing: it is the first to go."""
    model = tiny_bert()
    with torch.no_grad():
        model.layers[0].attention.output.weight[:, 8:16] = 0  # head 1 of layer 0
    state = State.start(model, token_data())
    changed = get_pass("prune_heads")(heads=1, ffn=0.0).run(state).changed
    assert changed["layers"]["layers.0"]["heads"] == [0, 2, 3, 4, 5]


def test_pruned_model_equals_the_original_with_those_heads_silenced():
    model = tiny_bert()
    state = State.start(model, token_data())
    changed = get_pass("prune_heads")(heads=1, ffn=0.0).run(state).changed
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            gone = set(range(HEADS)) - set(changed["layers"][f"layers.{i}"]["heads"])
            for h in gone:
                layer.attention.output.weight[:, h * 8:(h + 1) * 8] = 0
        x = [torch.from_numpy(v) for v in state.data.x_val.values()]
        assert torch.allclose(state.model(*x), model(*x), atol=1e-5)


def test_factorised_embedding_keeps_ids_and_shrinks_the_table(state):
    changed = get_pass("lowrank")(layers="embedding", param_budget=0.25, min_params=0).run(state).changed
    word = state.model.word
    assert isinstance(word[0], torch.nn.Embedding) and word[0].num_embeddings == VOCAB
    rank = changed["layers"]["word"]["rank"]
    assert rank == int(0.25 * VOCAB * HIDDEN // (VOCAB + HIDDEN)) and word[1].weight.shape == (HIDDEN, rank)
    assert changed["params_after"] == changed["params_before"] - VOCAB * HIDDEN + rank * (VOCAB + HIDDEN)
    _runs_and_captures(state)


def test_lowrank_on_the_linear_layers_keeps_the_encoder_exportable(state):
    changed = get_pass("lowrank")(layers="linear", param_budget=0.3, min_params=0).run(state).changed
    assert {f"layers.{i}.{p}" for i in range(4) for p in ("attention.query", "intermediate", "out")} <= set(changed["layers"])
    assert changed["params_after"] < changed["params_before"]
    _runs_and_captures(state)
    with pytest.raises(ModelError, match="run transformer passes before lowrank"):
        get_pass("prune_heads")(heads=1).run(state)


def test_shallow_student_distilled_from_hidden_states_gets_closer_to_the_teacher(state):
    changed = get_pass("distill_hidden")(layers=2, epochs=3, lr=3e-3, batch=16).run(state).changed
    assert len(state.model.layers) == 2 and changed["teacher_layers_kept"] == [1, 3]
    assert changed["val_score_after"] > changed["val_score_before"]
    assert changed["loss_first_last"][1] < changed["loss_first_last"][0]
    _runs_and_captures(state)


def test_the_transformer_recipe_exports_through_the_parity_gate(tmp_path):
    from edgefleet.compress.pipeline import ExportConfig, run_export
    from edgefleet.compress.recipe import Recipe

    recipe = Recipe.from_toml("transformer")
    assert [p.name for p in recipe.passes] == ["prune_heads", "lowrank", "distill_hidden", "quantize"]
    data = token_data(128)
    np.savez(tmp_path / "t.npz", **{f"x.{k}": v for k, v in data.x_train.items()})
    r = run_export(ExportConfig(model="tests.compress.test_transformer_passes:tiny_bert", data=str(tmp_path / "t.npz"),
                                task="embedding", recipe="transformer", out=str(tmp_path / "b"),
                                targets=("onnx-int8", "tflite-int8", "efm-int8"), measure_latency=False, max_drop=1.0))
    stages = {s["stage"]: s for s in r.stages}
    assert stages["distill_hidden"]["changed"]["teacher_layers_kept"] == [0, 2, 3]
    assert stages["lowrank"]["changed"]["layers"]["word"]["rank"] == int(0.5 * VOCAB * HIDDEN // (VOCAB + HIDDEN))
    assert stages["quantize"]["params"] < 0.35 * stages["prune_heads"]["changed"]["params_before"]
    assert sorted(v.target for v in r.verdicts) == ["efm-int8", "onnx-int8", "tflite-int8"]
    for v in r.verdicts:  # every artifact passed the parity gate against the int8 reference
        assert v.shipped, (v.target, v.reason)


def test_passes_refuse_models_without_the_bert_layout_and_impossible_requests(state, digits_data):
    from edgefleet.compress import zoo

    digits = State.start(zoo.digits_cnn(width=4, hidden=8), digits_data)
    for name, params in (("prune_heads", {"heads": 1}), ("distill_hidden", {"layers": 1})):
        with pytest.raises(ModelError, match=f"pass {name}: DigitsCNN is not a BERT-layout encoder: no word embedding"):
            get_pass(name)(**params).run(digits)
    with pytest.raises(ModelError, match="cannot remove 6 of the 6 heads of layers.0"):
        get_pass("prune_heads")(heads=6).run(state)
    with pytest.raises(ModelError, match="layers=5: the model has only 4 layers"):
        get_pass("distill_hidden")(layers=5).run(state)
    with pytest.raises(ConfigError, match="prune_heads: nothing to remove"):
        get_pass("prune_heads")(heads=0, ffn=0.0)
    with pytest.raises(ConfigError, match=r"prune_heads.ffn: 0.99 is out of range"):
        get_pass("prune_heads")(ffn=0.99)
