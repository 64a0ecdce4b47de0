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
