"""Training above a cached frozen bottom gives the same forward as the whole model, trains only the
top layers, and leaves a standard model directory."""
import pytest
import torch

from diplostance.errors import DiplostanceError
from diplostance.frozen import FrozenBottom, collator


def small_bert(layers=3):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, num_labels=4, problem_type="multi_label_classification")
    return BertForSequenceClassification(config).eval()


def test_cached_bottom_plus_top_equals_the_whole_model():
    model = small_bert()
    seqs = [[2, 5, 7, 9, 3], [2, 11, 3], [2, 8, 8, 8, 8, 8, 3]]
    ids = torch.full((3, 7), 0)
    mask = torch.zeros((3, 7), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), 1
    with torch.no_grad():
        whole = model(input_ids=ids, attention_mask=mask).logits
    bottom = FrozenBottom(model, 2)
    cache = bottom.encode(seqs, pad_id=0)
    assert [c.shape for c in cache] == [(5, 16), (3, 16), (7, 16)]
    batch = collator(cache)([{"row": i, "labels": [0.0, 1.0, 0.0, 0.0]} for i in range(3)])
    assert batch["labels"].dtype == torch.float32 and batch["inputs_embeds"].shape == (3, 7, 16)
    bottom.detach()
    with torch.no_grad():
        top = model(inputs_embeds=batch["inputs_embeds"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(top, whole, atol=1e-5, rtol=1e-5)
    bottom.restore()
    assert len(model.bert.encoder.layer) == 3 and model.bert.embeddings is bottom.embeddings
    trainable = {n.split(".")[3] for n, p in model.named_parameters() if p.requires_grad and ".layer." in n}
    assert trainable == {"2"}  # only the top layer (and the pooler and head) train
    assert not any(p.requires_grad for p in model.bert.embeddings.parameters())


def test_freezing_every_layer_is_refused_with_the_range():
    with pytest.raises(DiplostanceError, match="expected 1 to 2 for this 3-layer model"):
        FrozenBottom(small_bert(), 3)


def test_a_recipe_with_a_frozen_bottom_trains_a_standard_model(tmp_path):
    from transformers import pipeline

    from conftest import tiny_config
    from diplostance import StanceClassifier
    from diplostance.train import train

    config = tiny_config(**{"model.num_layers": 2, "training.freeze_layers": 1, "training.freeze_embeddings": "true",
                            "data.limit": 120, "training.epochs": 1})
    result = train(config, output=tmp_path / "frozen", quiet=True)
    clf = StanceClassifier.load(result.output, backend="fp32")
    texts = ["Le Canada condamne fermement les frappes.", "Les deux pays signeront un accord."]
    ours, _ = clf.predict_proba(texts)
    pipe = pipeline("text-classification", model=str(result.output), top_k=None, device="cpu")
    theirs = [{d["label"]: d["score"] for d in row} for row in pipe(texts, function_to_apply="sigmoid")]
    for p, q in zip(ours, theirs):
        assert abs(p[0] - q["commitment"]) < 1e-5 and abs(p[2] - q["opposition"]) < 1e-5
