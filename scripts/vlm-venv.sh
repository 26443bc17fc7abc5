#!/bin/sh
# Installs the Python reference the vision-language test data is made with, pinned, into
# out/venv-vlm (from PyPI only; torch's wheel brings its CUDA libraries, several GB). Only
# infer/tests/data/make_vlm_reference.py needs it: the test itself reads the committed data.
# Idempotent: a venv that already has these versions is left as it is.
set -eu
venv="$(dirname "$0")/../out/venv-vlm"
pins="torch==2.15.0 transformers==5.24.0 numpy==2.4.6 safetensors==0.8.0 pillow==13.0.0"
check='import torch, transformers, numpy, safetensors, PIL, sys
sys.exit(not (torch.__version__.split("+")[0] == "2.15.0" and transformers.__version__ == "5.24.0"
              and numpy.__version__ == "2.4.6" and PIL.__version__ == "13.0.0"))'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check $pins
fi
echo "vlm-venv: ok"
