#!/bin/sh
# Installs the Python peers `make bench` measures the inference engine against, pinned, into
# out/venv-bench (from PyPI only; torch's wheel brings its CUDA libraries, several GB).
# Idempotent: a venv that already has these versions is left as it is.
set -eu
venv="$(dirname "$0")/../out/venv-bench"
pins="sentence-transformers==6.2.0 torch==2.15.0 numpy==2.4.6 silero-vad==6.2.3 onnxruntime==1.31.1
      faster-whisper==1.2.1 ctranslate2==4.8.5 piper-tts==1.8.0
      rapidocr_onnxruntime==1.4.4 opencv-python==5.0.0.93 pyclipper==1.4.0 shapely==2.2.0
      transformers==5.24.0 pillow==13.0.0"
check='import sentence_transformers, torch, silero_vad, onnxruntime, faster_whisper, piper, PIL, sys
import rapidocr_onnxruntime, importlib.metadata as m
sys.exit(not (sentence_transformers.__version__ == "6.2.0" and onnxruntime.__version__ == "1.31.1"
              and faster_whisper.__version__ == "1.2.1" and m.version("piper-tts") == "1.8.0"
              and m.version("rapidocr_onnxruntime") == "1.4.4" and PIL.__version__ == "13.0.0"))'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check $pins
fi
echo "bench-venv: ok"
