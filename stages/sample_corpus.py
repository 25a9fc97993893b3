"""Stage sample_corpus: the generated CREMA-D-format corpus in data/raw/sample (when data.source points there)."""

from pathlib import Path

from flows.sample_corpus import run
from stages import main
from synthtext.ops.config import Params
from synthtext.ops.files import write_text_atomic

OUT = "data/raw/sample"


def stage(params: Params) -> str:
    source = params.data.source
    if Path(source) != Path(OUT):
        # A real dataset is in use: leave only a note, so DVC still has its (tiny) output.
        for old in Path(OUT).glob("*"):
            old.unlink()
        write_text_atomic(Path(OUT) / "SKIPPED.txt", f"data.source is {source}: no sample corpus generated\n")
        return f"sample_corpus: skipped (data.source is {source})"
    fan, seconds = run(OUT, params.sample, params.runner)
    frames = sum(r["frames"] for r in fan.results)
    return (f"sample_corpus: {len(fan.results)} clips, {frames} frames in {seconds:.1f} s "
            f"({frames / seconds:.0f} frames/s); contact sheet: {OUT}/contact_sheet.png")


if __name__ == "__main__":
    main(stage)
