#!/usr/bin/env python3
"""Nightshift `exec` generator: text-to-image with Hugging Face diffusers.

STATUS: an example for real GPU nodes. It has NOT been run in this
repository's CI or by its tests: the build machine has no GPU, no PyPI
access and no model weights. It is only checked to be valid Python
(`python3 -m py_compile`). The Node generator next to it
(node-generator.mjs) is what the tests run; both follow the same protocol.

Needs (on the GPU node):
  - an NVIDIA GPU with CUDA; about 4-6 GB VRAM for SD 1.5 at 512x512 in
    fp16, about 10-12 GB for SDXL at 1024x1024
  - Python >= 3.9 and: torch (a CUDA build, >= 2.1), diffusers >= 0.27,
    transformers, accelerate, safetensors, Pillow
        pip install torch diffusers transformers accelerate safetensors pillow
  - weights, fetched once beforehand (nodes often run offline), e.g.
        huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5
    or any local diffusers folder / single-file checkpoint path passed as
    the model. SDXL checkpoints work too (AutoPipelineForText2Image).

Protocol (stdout, one JSON object per line; everything else is log):
  {"step": 3, "total": 50}       after each denoising step
  {"preview": "/path.png"}       a cheap latent-space preview, every few steps
  {"output": "/path.png"}        the final image
A CUDA out-of-memory error is printed as "CUDA out of memory" and exits 2;
Nightshift reports it as an OOM failure so the job can go to a bigger card.

Node config (see examples/node-config.yaml):
  command: [python3, generators/diffusers_generator.py, --params={params}, --model={model}]
The params file (written by Nightshift) carries prompt, seed, model, output,
preview and params {width, height, steps, guidance, ...}. Extra sweep params
understood here: negative_prompt (string), scheduler ("euler_a", "dpm++",
"ddim"; default: the checkpoint's own), preview_every (int, default 5).
Flags given on the command line override the params file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# SD 1.x latent channels -> approximate RGB (the linear map ComfyUI and
# A1111 use for cheap previews; good enough to watch an image form).
LATENT_RGB_FACTORS = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
]


def emit(**msg) -> None:
    """One protocol line, flushed at once (stdout is a pipe, not a terminal)."""
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", help="JSON params file written by Nightshift")
    ap.add_argument("--model", help="diffusers model id or local path")
    ap.add_argument("--prompt")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--output")
    ap.add_argument("--preview")
    ap.add_argument("--device", default=os.environ.get("NIGHTSHIFT_DEVICE", "cuda"))
    a = ap.parse_args(argv)

    doc: dict = {}
    if a.params:
        with open(a.params, encoding="utf-8") as f:
            doc = json.load(f)
    params = dict(doc.get("params") or {})
    job = {
        "prompt": doc.get("prompt", ""),
        "seed": int(doc.get("seed", 0)),
        "model": doc.get("model"),
        "output": doc.get("output", "output.png"),
        "preview": doc.get("preview", "preview.png"),
        "width": int(params.get("width", 512)),
        "height": int(params.get("height", 512)),
        "steps": int(params.get("steps", 30)),
        "guidance": float(params.get("guidance", 7.5)),
        "negative_prompt": params.get("negative_prompt") or None,
        "scheduler": params.get("scheduler"),
        "preview_every": max(1, int(params.get("preview_every", 5))),
        "device": a.device,
    }
    for key in ("prompt", "seed", "model", "output", "preview", "width", "height", "steps", "guidance"):
        value = getattr(a, key)
        if value is not None:
            job[key] = value
    if not job["model"] or job["model"] == "default":
        job["model"] = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    return job


def set_scheduler(pipe, name):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler

    schedulers = {
        "euler_a": EulerAncestralDiscreteScheduler,
        "dpm++": DPMSolverMultistepScheduler,
        "ddim": DDIMScheduler,
    }
    if name not in schedulers:
        raise SystemExit(f"unknown scheduler {name!r}; known: {', '.join(schedulers)}")
    pipe.scheduler = schedulers[name].from_config(pipe.scheduler.config)


def latent_preview(latents, path: str) -> None:
    """Writes an approximate RGB image of the current latents (no VAE decode)."""
    import torch
    from PIL import Image

    factors = torch.tensor(LATENT_RGB_FACTORS, dtype=latents.dtype, device=latents.device)
    if latents.shape[1] != factors.shape[0]:
        return  # not an SD-1.x-style 4-channel latent; skip previews rather than show garbage
    rgb = torch.einsum("chw,cr->hwr", latents[0], factors)
    rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).byte().cpu().numpy()
    img = Image.fromarray(rgb)
    img = img.resize((img.width * 4, img.height * 4), Image.BILINEAR)
    tmp = path + ".tmp.png"
    img.save(tmp)
    os.replace(tmp, path)  # atomic: Nightshift never reads half a preview


def main(argv: list[str]) -> int:
    job = parse_args(argv)
    log(f"diffusers_generator: model={job['model']} size={job['width']}x{job['height']} steps={job['steps']} seed={job['seed']}")

    import torch
    from diffusers import AutoPipelineForText2Image

    started = time.time()
    dtype = torch.float16 if job["device"].startswith("cuda") else torch.float32
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(job["model"], torch_dtype=dtype, safety_checker=None)
        pipe = pipe.to(job["device"])
        if job["scheduler"]:
            set_scheduler(pipe, job["scheduler"])
        pipe.set_progress_bar_config(disable=True)
        log(f"diffusers_generator: pipeline ready in {time.time() - started:.1f}s")

        total = job["steps"]
        base, ext = os.path.splitext(job["preview"])

        def on_step_end(pipeline, step_index, timestep, callback_kwargs):
            step = step_index + 1
            emit(step=step, total=total)
            if step % job["preview_every"] == 0 and step < total:
                path = f"{base}-{step}{ext or '.png'}"
                try:
                    latent_preview(callback_kwargs["latents"], path)
                    emit(preview=path)
                except Exception as err:  # a preview must never kill the render
                    log(f"diffusers_generator: preview failed: {err}")
            return callback_kwargs

        generator = torch.Generator(device=job["device"]).manual_seed(job["seed"])
        result = pipe(
            prompt=job["prompt"],
            negative_prompt=job["negative_prompt"],
            width=job["width"],
            height=job["height"],
            num_inference_steps=total,
            guidance_scale=job["guidance"],
            generator=generator,
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=["latents"],
        )
    except torch.cuda.OutOfMemoryError as err:
        # PyTorch's message starts "CUDA out of memory"; keep it on one line for the log tail.
        log(f"torch.cuda.OutOfMemoryError: {' '.join(str(err).split())}")
        return 2

    image = result.images[0]
    image.save(job["output"])
    emit(output=job["output"])
    log(f"diffusers_generator: done in {time.time() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
