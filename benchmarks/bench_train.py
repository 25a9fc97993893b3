"""Training and inference speed and memory of the networks, per profile.

    python benchmarks/bench_train.py [--profiles paper cpu] [--steps 3]

For each profile (in its own process, so peak memory is that profile's): seconds per generator
step (reconstruction + perceptual + frame- and emotion-adversarial losses, backward, Adam) and per
discriminator step (critic with gradient penalty + emotion discriminator), peak resident memory,
and inference time for 75 frames (3 s of video at 25 fps). Paper profile: batch 2, 32 frames,
128x128; cpu profile: the demo's batch 4, 8 frames, 64x64. Inputs are random tensors of the right
shapes (speed does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = {"paper": 2, "cpu": 4, "tiny": 4}


def measure(name: str, steps: int, decoder: str | None = None) -> dict:
    import torch
    from torch.nn import functional as F

    from synthtext.model import EmotionDiscriminator, FrameDiscriminator, Generator, gradient_penalty, profile
    from synthtext.model.train.losses import (
        EmotionFeatures,
        coarse_loss,
        flow_smoothness,
        mask_prior,
        perceptual_loss,
        reconstruction_loss,
    )

    torch.manual_seed(0)
    cfg, batch = profile(name, **({"decoder": decoder} if decoder else {})), BATCH[name]
    gen, critic, emo = Generator(cfg), FrameDiscriminator(cfg), EmotionDiscriminator(cfg)
    features = EmotionFeatures(EmotionDiscriminator(cfg))
    opt_g, opt_d = torch.optim.Adam(gen.parameters()), torch.optim.Adam([*critic.parameters(), *emo.parameters()])
    size = cfg.image_size
    mels = torch.randn(batch, cfg.frames, cfg.n_mels, cfg.mel_context)
    reference = torch.rand(batch, 3, size, size) * 2 - 1
    real = torch.rand(batch, cfg.frames, 3, size, size) * 2 - 1
    weights = torch.ones(batch, cfg.frames, 1, size, size)
    emotion = torch.zeros(batch, dtype=torch.long)
    refs = reference.repeat_interleave(cfg.frames, 0)

    def g_step():
        fake, aux, parts = gen(mels, reference, emotion, parts=True)
        loss = (reconstruction_loss(fake, real, weights) + 0.1 * perceptual_loss(features, fake.flatten(0, 1),
                                                                               real.flatten(0, 1))
                + 0.1 * F.cross_entropy(aux, emotion) - 0.01 * critic(fake.flatten(0, 1), refs).mean()
                + 0.001 * F.cross_entropy(emo(fake), emotion))
        if "flow" in parts:  # the motion decoder's own terms
            loss = loss + coarse_loss(fake, real) + 0.05 * flow_smoothness(parts["flow"]) + \
                mask_prior(parts["mask"], weights)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()

    def d_step():
        with torch.no_grad():
            fake, _ = gen(mels, reference, emotion)
        flat_fake, flat_real = fake.flatten(0, 1), real.flatten(0, 1)
        loss = (critic(flat_fake, refs).mean() - critic(flat_real, refs).mean()
                + 10 * gradient_penalty(critic, flat_real, flat_fake, refs)
                + F.cross_entropy(emo(real), emotion) + F.cross_entropy(emo(fake), torch.full_like(emotion, 6)))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()

    def timed(fn) -> float:
        fn()  # warm-up
        started = time.perf_counter()
        for _ in range(steps):
            fn()
        return (time.perf_counter() - started) / steps

    g_time, d_time = timed(g_step), timed(d_step)
    gen.eval()
    windows = -(-75 // cfg.frames)
    with torch.no_grad():
        started = time.perf_counter()
        for _ in range(windows):
            gen(mels[:1], reference[:1], emotion[:1])
        infer = time.perf_counter() - started
    return {"profile": name, "batch": batch, "frames": cfg.frames, "size": size, "g_step_s": g_time,
            "d_step_s": d_time, "infer_75_frames_s": infer,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "generator_params_m": sum(p.numel() for p in gen.parameters()) / 1e6, "decoder": cfg.decoder}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["paper", "cpu"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--decoder", choices=["motion", "pixels"], help="override the profiles' decoder")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.decoder)))
        return
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for name in args.profiles:
        extra = ["--decoder", args.decoder] if args.decoder else []
        out = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), *extra],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['profile']:>6} ({r['decoder']} decoder): batch {r['batch']} x {r['frames']} frames at "
              f"{r['size']}px, generator "
              f"{r['generator_params_m']:.1f} M params | G step {r['g_step_s']:.2f} s | D step {r['d_step_s']:.2f} s | "
              f"75-frame inference {r['infer_75_frames_s']:.2f} s | peak {r['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
