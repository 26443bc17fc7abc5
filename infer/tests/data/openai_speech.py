"""Text to speech through OpenAI's own Python client: the engine must answer as OpenAI does.

Usage: openai_speech.py BASE_URL OUT_DIR TEXT. Writes speech.wav, speech.opus, speech.pcm and
fast.wav (speed 2) into OUT_DIR and prints one JSON object with what the client got; the Rust
test (infer/tests/speech.rs) listens to the files with the engine's Whisper.
"""
import json
import os
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed-on-loopback", max_retries=0)
out_dir, text = sys.argv[2], sys.argv[3]
content_types = {}
pcm_rate = None
for response_format in ["wav", "opus", "pcm"]:
    # OpenAI's voice names all speak with the box's one voice.
    raw = client.audio.speech.with_raw_response.create(
        model="piper-en-us-joe-medium", voice="nova", input=text, response_format=response_format
    )
    content_types[response_format] = raw.headers.get("content-type")
    if response_format == "pcm":
        pcm_rate = raw.headers.get("x-sample-rate")
    raw.parse().write_to_file(os.path.join(out_dir, f"speech.{response_format}"))
fast = client.audio.speech.create(
    model="piper-en-us-joe-medium", voice="joe", input=text, response_format="wav", speed=2.0
)
fast.write_to_file(os.path.join(out_dir, "fast.wav"))
try:
    client.audio.speech.create(model="piper-en-us-joe-medium", voice="alloy", input=text, response_format="mp3")
    mp3 = None
except openai.BadRequestError as error:
    mp3 = {"status": error.status_code, "message": error.message}
print(json.dumps({"content_types": content_types, "pcm_rate": pcm_rate, "mp3": mp3}))
