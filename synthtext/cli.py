"""The ``synthtext`` command line."""

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


def _demo_clips(args: argparse.Namespace) -> None:
    from synthtext.demo_clips import make_demo_clips

    paths = make_demo_clips(args.out, args.actors, args.clips_per_actor, args.seconds, args.seed)
    print(f"{len(paths)} clips written to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthtext", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="print what an aligned clip file holds; draw a contact sheet")
    inspect.add_argument("clips", nargs="+", help="data/processed/clips/<clip>.h5 files")
    inspect.add_argument("--sheet", help="write a PNG contact sheet (frames with landmarks) here")
    inspect.add_argument("--frames", type=int, default=6, help="frames per clip on the sheet")
    inspect.set_defaults(run=_inspect)
    demo = commands.add_parser("demo-clips", help="write small CREMA-D-format clips made from a bundled photo")
    demo.add_argument("--out", required=True)
    demo.add_argument("--actors", type=int, default=4)
    demo.add_argument("--clips-per-actor", type=int, default=2)
    demo.add_argument("--seconds", type=float, default=2.2)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo_clips)
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
