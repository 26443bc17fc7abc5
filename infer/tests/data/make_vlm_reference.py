"""Makes the tiny SmolVLM (Idefics3) that infer/tests/vlm.rs checks the engine's vision model
against, and what Hugging Face transformers answers with it.

Run with the pinned reference (scripts/vlm-venv.sh):
    out/venv-vlm/bin/python infer/tests/data/make_vlm_reference.py

It writes infer/tests/data/vlm/: a random-weight Idefics3ForConditionalGeneration from a small
config (seed fixed; saved as a real checkpoint is: config.json, model.safetensors,
preprocessor_config.json, tokenizer.json), a synthetic picture drawn here (image.png, not square
so the processor's resizes both change it), and reference.json: the processor's input ids and
pixel values for the chat prompt with that picture, the logits after the prefill and after each
greedy step, and the greedy ids. The processor runs as the engine does: one image, no splitting.
"""

import json
import pathlib

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

OUT = pathlib.Path(__file__).parent / "vlm"
SEED = 20261201
STEPS = 6
PROMPT = "Describe this image."
# SmolVLM-256M-Instruct's chat template (its chat_template.json), which the engine writes out.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
           "<global-img>", "<image>"]
WORDS = ["User", "Assistant", ":", ".", "Describe", "this", "image", "a", "the", "red", "green",
         "blue", "square", "circle", "on", "and", "is", "sky", "sun", "sea", "boat", "tree"]


def tokenizer():
    """A word-level tokenizer with SmolVLM's special tokens, as tokenizer.json."""
    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIAL)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<end_of_utterance>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    return fast, len(vocab)


def picture():
    """45 × 30 RGB: a gradient sky, a sun, a sea with a boat; the same bytes every run."""
    h, w = 30, 45
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[..., 0] = (40 + 4 * y).astype(np.uint8)
    img[..., 1] = (90 + 3 * y + x).astype(np.uint8)
    img[..., 2] = (230 - 2 * y).astype(np.uint8)
    sun = (x - 33) ** 2 + (y - 8) ** 2 <= 25
    img[sun] = [250, 210, 40]
    sea = y >= 20
    img[sea] = np.stack([10 + 0 * x, 60 + x, 120 + 2 * y], -1)[sea].astype(np.uint8)
    boat = (y >= 17) & (y < 21) & (x >= 8) & (x < 20)
    img[boat] = [120, 60, 20]
    return Image.fromarray(img, "RGB")


def config(vocab):
    return Idefics3Config(
        image_token_id=SPECIAL.index("<image>"),
        scale_factor=2,
        tie_word_embeddings=False,
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8,
                           hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        text_config=dict(model_type="llama", vocab_size=vocab, hidden_size=64,
                         intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=100000.0,
                         max_position_embeddings=256, tie_word_embeddings=False,
                         bos_token_id=SPECIAL.index("<|im_start|>"),
                         eos_token_id=SPECIAL.index("<end_of_utterance>"),
                         pad_token_id=0),
    )


def random_model(seed, vocab):
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config(vocab)).eval()
    # transformers' own init (std 0.02) gives near-equal logits whose argmax a rounding could
    # flip; larger random weights give logits a unit or so apart.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param) / max(1, param.shape[-1]) ** 0.25)
    return model


def greedy(model, inputs, eos):
    """The prefill's and each step's last logits, through the cache, and the ids picked; None
    where a pick is a near tie (rounding could flip it) or the end of the turn (the steps
    would stop early)."""
    with torch.no_grad():
        out = model(**inputs, use_cache=True)
        logits = [out.logits[0, -1]]
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        generated = []
        for _ in range(STEPS):
            top2 = torch.topk(logits[-1], 2).values
            token = int(logits[-1].argmax())
            if float(top2[0] - top2[1]) < 1e-2 or token == eos:
                return None
            generated.append(token)
            step = model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True)
            cache = step.cache if hasattr(step, "cache") else step.past_key_values
            logits.append(step.logits[0, -1])
    return logits, generated


def main():
    OUT.mkdir(exist_ok=True)
    fast, vocab = tokenizer()
    # The processor as SmolVLM's preprocessor_config.json has it, scaled to the tiny encoder:
    # size is 4 × the encoder's edge, as SmolVLM's (2048 for 512).
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 128},
                                       max_image_size={"longest_edge": 32}, resample=1)
    processor = Idefics3Processor(images, fast, image_seq_len=4, chat_template=CHAT_TEMPLATE)
    image = picture()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=[image], text=text, return_tensors="pt")
    ids = inputs["input_ids"]
    eos = SPECIAL.index("<end_of_utterance>")
    # The first seed from SEED on whose greedy steps are clear picks that do not end the turn.
    for seed in range(SEED, SEED + 100):
        model = random_model(seed, vocab)
        result = greedy(model, inputs, eos)
        if result is not None:
            break
    logits, generated = result
    with torch.no_grad():
        # transformers' own greedy generation must pick the same ids.
        made = model.generate(**inputs, max_new_tokens=STEPS, do_sample=False)
        assert made[0, ids.shape[1]:].tolist() == generated, made
        # The same sequence in one pass, no cache: what the cached steps must equal.
        whole = torch.cat([ids, torch.tensor([generated[:-1]])], dim=1)
        full = model(input_ids=whole, pixel_values=inputs["pixel_values"],
                     pixel_attention_mask=inputs["pixel_attention_mask"], use_cache=False)
        drift = (full.logits[0, -1] - logits[-2]).abs().max().item()
        assert drift < 1e-5, drift
    model.save_pretrained(OUT, safe_serialization=True)
    processor.save_pretrained(OUT)
    image.save(OUT / "image.png")
    reference = {
        "seed": seed,
        "prompt_text": text,
        "user_prompt": PROMPT,
        "input_ids": ids[0].tolist(),
        "pixel_values_shape": list(inputs["pixel_values"].shape),
        "pixel_values": inputs["pixel_values"].flatten().tolist(),
        "steps": STEPS,
        "generated_ids": generated,
        "generated_text": fast.decode(generated, skip_special_tokens=True),
        "logits": [row.tolist() for row in logits],
        "versions": {"torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
    }
    (OUT / "reference.json").write_text(json.dumps(reference) + "\n")
    for path in sorted(OUT.iterdir()):
        print(path.name, path.stat().st_size)
    print("seed:", seed, "prompt:", repr(text))
    print("generated:", generated, repr(reference["generated_text"]))


if __name__ == "__main__":
    main()
