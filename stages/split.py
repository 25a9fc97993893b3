"""Stage split: align_report.json -> data/processed/splits/{train,val}.txt (disjoint actors)."""

from flows.split import split_flow
from stages import main
from synthtext.ops.config import Params


def stage(params: Params) -> str:
    summary = split_flow("data/processed/align_report.json", "data/processed/splits", params.split.val_ratio,
                         params.split.seed)
    return (f"split: {summary['train_clips']} train clips ({len(summary['train_actors'])} actors), "
            f"{summary['val_clips']} val clips ({len(summary['val_actors'])} actors)")


if __name__ == "__main__":
    main(stage)
