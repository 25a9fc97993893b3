"""Stage split: align_report.json -> data/processed/splits/{train,val}.txt (disjoint actors)."""

from stages import main


def stage(params: dict) -> str:
    from flows.split import split_flow
    from synthtext.params import section

    cfg = section(params, "split")
    summary = split_flow("data/processed/align_report.json", "data/processed/splits", cfg["val_ratio"],
                         cfg["seed"])
    return (f"split: {summary['train_clips']} train clips ({len(summary['train_actors'])} actors), "
            f"{summary['val_clips']} val clips ({len(summary['val_actors'])} actors)")


if __name__ == "__main__":
    main(stage)
