"""Hugging Face transformers on the same model folder as sparse-serve's bench: greedy decode tokens/s, BF16.

--mode eager: the plain model (dynamic cache). --mode compiled: static cache and torch.compile(mode="reduce-overhead")
(CUDA graphs), as transformers' docs recommend for fast generation. Decode tokens/s = 32 new tokens' time minus one
token's time (the prefill), after a warm-up, median of three. Writes one JSON object to --json.
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--mode", choices=["eager", "compiled"], default="eager")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    if not torch.cuda.is_available():
        sys.exit("no GPU visible to torch")
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16).to("cuda").eval()
    load_s = time.time() - t0
    if a.mode == "compiled":
        model.generation_config.cache_implementation = "static"
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab, (1, a.prompt_tokens), device="cuda", generator=torch.Generator("cuda").manual_seed(0))

    def run(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    warm = time.time()
    run(a.new_tokens)
    run(1)
    warm_s = time.time() - warm
    rates = []
    for _ in range(3):
        full, one = run(a.new_tokens), run(1)
        rates.append((a.new_tokens - 1) / max(full - one, 1e-9))
    res = {"mode": a.mode, "decode_tokens_per_s": statistics.median(rates), "rounds": rates, "load_seconds": load_s,
           "warmup_seconds": warm_s, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
