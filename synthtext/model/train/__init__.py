"""Training: data windows from the aligned clips, losses, and the three training stages."""
