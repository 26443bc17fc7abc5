"""The local API through OpenAI's own Python client: the engine must answer as OpenAI does.

Usage: openai_client.py BASE_URL SPEECH_WAV. Prints one JSON object with what the client got; the Rust
test (infer/tests/api.rs) checks it against the engine's model.
"""
import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed-on-loopback", max_retries=0)
models = [m.id for m in client.models.list()]
# The client asks for base64 unless told otherwise, and decodes it itself.
default = client.embeddings.create(model="all-minilm-l6-v2", input=["the kettle is on", "water boils"])
floats = client.embeddings.create(model="all-minilm-l6-v2", input="the kettle is on", encoding_format="float")
try:
    client.embeddings.create(model="no-such-model", input="x")
    unknown = None
except openai.NotFoundError as error:
    unknown = {"status": error.status_code, "code": error.code, "message": error.message}
with open(sys.argv[2], "rb") as audio:
    transcript = client.audio.transcriptions.create(model="whisper-tiny-en", file=audio)
with open(sys.argv[2], "rb") as audio:
    plain = client.audio.transcriptions.create(model="whisper-tiny-en", file=audio, response_format="text")
with open(sys.argv[2], "rb") as audio:
    verbose = client.audio.transcriptions.create(
        model="whisper-tiny-en", file=audio, response_format="verbose_json", language="en"
    )
try:
    with open(sys.argv[2], "rb") as audio:
        client.audio.transcriptions.create(model="whisper-tiny-en", file=audio, language="fr")
    french = None
except openai.BadRequestError as error:
    french = {"status": error.status_code, "message": error.message}
print(json.dumps({
    "models": models,
    "default": [d.embedding for d in default.data],
    "default_usage": default.usage.prompt_tokens,
    "float": floats.data[0].embedding,
    "unknown": unknown,
    "transcript": transcript.text,
    "plain": plain,
    "verbose": {"text": verbose.text, "duration": verbose.duration, "language": verbose.language,
                "segments": [s.text for s in verbose.segments]},
    "french": french,
}))
