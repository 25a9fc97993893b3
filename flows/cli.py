"""The ``synthtext`` command line: user input in, flows run, one clear line on a mistake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthtext.errors import SynthTextError


def _inspect(args: argparse.Namespace) -> None:
    from synthtext.clipfile import read_clip
    from synthtext.preview import contact_sheet

    for path in args.clips:
        if not Path(path).is_file():
            raise SynthTextError(f"{path}: no such file")
        clip = read_clip(path)
        seconds = len(clip.video) / clip.attrs["fps"]
        print(f"{path}: {len(clip.video)} frames ({seconds:.2f} s) of {clip.video.shape[1]}x{clip.video.shape[2]}, "
              f"{len(clip.audio)} audio samples at {clip.attrs['sample_rate']} Hz")
        for key, value in clip.attrs.items():
            print(f"  {key}: {value}")
    if args.sheet:
        print(f"contact sheet: {contact_sheet(args.clips, args.sheet, frames=args.frames)}")


def _sample_corpus(args: argparse.Namespace) -> None:
    from flows.sample_corpus import run
    from synthtext.corpus.generate import CorpusParams, check_output_folder, plan

    check_output_folder(Path(args.out))
    params = {"identities": args.identities, "sentences": args.sentences, "intensity": args.intensity,
              "seed": args.seed, "photos": args.photos, "voice": args.voice}
    plan(CorpusParams(**params))  # bad sizes fail here, before a Prefect server starts
    fan, seconds = run(args.out, params, {"kind": "threads", "workers": args.workers})
    frames = sum(r["frames"] for r in fan.results)
    print(f"{len(fan.results)} clips ({frames} frames) written to {args.out} in {seconds:.1f} s; "
          f"contact sheet: {Path(args.out) / 'contact_sheet.png'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthtext", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="print what an aligned clip file holds; draw a contact sheet")
    inspect.add_argument("clips", nargs="+", help="data/processed/clips/<clip>.h5 files")
    inspect.add_argument("--sheet", help="write a PNG contact sheet (frames with landmarks) here")
    inspect.add_argument("--frames", type=int, default=6, help="frames per clip on the sheet")
    inspect.set_defaults(run=_inspect)
    corpus = commands.add_parser("sample-corpus", help="generate a small corpus in CREMA-D's format (speech, "
                                 "lip motion, emotional faces, ground truth)")
    corpus.add_argument("--out", required=True, help="a new or empty folder (or an earlier sample corpus)")
    corpus.add_argument("--identities", type=int, default=4)
    corpus.add_argument("--sentences", type=int, default=2, help="CREMA-D sentences per identity (1-12)")
    corpus.add_argument("--intensity", default="HI", choices=["LO", "MD", "HI"])
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--photos", help="a folder of face photos to use besides the bundled portrait")
    corpus.add_argument("--voice", help="a Piper .onnx voice (default: the bundled en_US joe voice)")
    corpus.add_argument("--workers", type=int, default=2)
    corpus.set_defaults(run=_sample_corpus)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except SynthTextError as exc:
        print(f"synthtext: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
