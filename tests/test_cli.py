"""The synthtext command line: one clear line and exit 1 on a user mistake."""

import subprocess
import sys

from synthtext.data.clipfile import write_clip
from tests.test_clipfile import make_clip


def synthtext(*args):
    return subprocess.run([sys.executable, "-m", "synthtext.cli", *args], capture_output=True, text=True)


def test_inspect_prints_and_draws(tmp_path):
    write_clip(tmp_path / "c.h5", make_clip(frames=8, size=64))
    result = synthtext("inspect", str(tmp_path / "c.h5"), "--sheet", str(tmp_path / "sheet.png"))
    assert result.returncode == 0, result.stderr
    assert "8 frames" in result.stdout and "emotion: ANG" in result.stdout
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_mistakes_exit_1_with_one_line(tmp_path):
    missing = synthtext("inspect", str(tmp_path / "nope.h5"))
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0 and "no such file" in missing.stderr
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    occupied = synthtext("sample-corpus", "--out", str(tmp_path / "photos"))
    assert occupied.returncode == 1 and "not empty" in occupied.stderr
    too_many = synthtext("sample-corpus", "--out", str(tmp_path / "new"), "--sentences", "20")
    assert too_many.returncode == 1 and "1-12" in too_many.stderr
