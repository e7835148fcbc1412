"""Bad configuration through the CLI: exit code 2, one line naming the problem and the fix,
no traceback unless `--debug`."""

from pathlib import Path

import pytest
import soundfile as sf

from benchmark.cli import main
from tests.conftest import sine

DEMO_TASKS = str(Path(__file__).parent / "demo_tasks.yaml")
CLIP_TASK = "tasks:\n  mine:\n    dataset: {}\n    level: clip\n    labels: multiclass\n    metrics: [accuracy]\n"
FILES = {  # written into {tmp} before each case
    "typo.yaml": "tasks:\n  demo:\n    dataset: demo\n    level: clip\n    labels: multiclass\n    metrik: [accuracy]\n",
    "type.yaml": "tasks:\n  demo:\n    dataset: demo\n    level: clip\n    labels: multiclass\n"
                 "    metrics: [accuracy]\n    seeds: three\n",
    "grid.yaml": "tasks:\n  demo:\n    dataset: demo\n    level: clip\n    labels: multiclass\n"
                 "    metrics: [accuracy]\n    l2_grid: [0.1, 0]\n",
    "no_path.csv": "file,label\na.wav,x\n",
    "no_label.csv": "path,split\na.wav,train\n",
    "t_no_path.yaml": CLIP_TASK.format("{tmp}/no_path.csv"),
    "t_no_label.yaml": CLIP_TASK.format("{tmp}/no_label.csv"),
    "t_missing.yaml": CLIP_TASK.format("{tmp}/nope.csv"),
}
# (case, argv with {tmp} for the case's folder, text the one-line message must contain)
CASES = [
    ("unknown task", ["run", "--tasks", "nope", "--tasks-file", DEMO_TASKS], "unknown task 'nope'; known: demo"),
    ("unknown upstream", ["run", "--upstreams", "nope", "--tasks-file", DEMO_TASKS], "unknown upstream 'nope'"),
    ("unknown upstream to extract", ["extract", "nope", "{tmp}/a.wav"], "unknown upstream 'nope'; known: "),
    ("unknown preset", ["pretrain", "apc", "--corpus", "{tmp}", "--preset", "huge"], "preset 'huge'"),
    ("unknown option", ["extract", "mel", "{tmp}/a.wav", "--set", "n_mel=64"], "n_mel"),
    ("option of the wrong type", ["extract", "mel", "{tmp}/a.wav", "--set", "n_mels=many"], "n_mels"),
    ("option without '='", ["extract", "mel", "{tmp}/a.wav", "--set", "n_mels"], "expected key=value"),
    ("pretraining option of the wrong type",
     ["pretrain", "apc", "--corpus", "{tmp}", "--preset", "tiny", "--set", "lr=fast"], "lr"),
    ("unknown pretraining option", ["pretrain", "apc", "--corpus", "{tmp}", "--set", "depth=2"], "depth"),
    ("tasks.yaml typo", ["run", "--tasks-file", "{tmp}/typo.yaml"], "typo.yaml:6: unknown key 'metrik'"),
    ("tasks.yaml wrong type", ["run", "--tasks-file", "{tmp}/type.yaml"], "type.yaml:7"),
    ("missing tasks file", ["run", "--tasks-file", "{tmp}/absent.yaml"], "absent.yaml"),
    ("label fraction out of range", ["run", "--tasks-file", DEMO_TASKS, "--fractions", "0,2"], "each must be in (0, 1]"),
    ("manifest without a path column", ["run", "--tasks-file", "{tmp}/t_no_path.yaml"], "no `path` column"),
    ("manifest without a label column", ["run", "--tasks-file", "{tmp}/t_no_label.yaml"], "no label column"),
    ("missing manifest", ["run", "--tasks-file", "{tmp}/t_missing.yaml"], "nope.csv"),
    ("missing audio", ["extract", "mel", "{tmp}/missing.wav"], "missing.wav: no such file or folder"),
    ("missing corpus folder", ["pretrain", "apc", "--corpus", "{tmp}/nowhere"], "nowhere"),
    ("bad snapshot steps", ["pretrain", "apc", "--corpus", "{tmp}", "--snapshots", "0,half"],
     "--snapshots '0,half': expected step numbers"),
    ("probe grid of the wrong kind", ["run", "--tasks-file", "{tmp}/grid.yaml"], "grid.yaml:2: task 'demo': l2_grid must be distinct positive numbers"),
]


@pytest.mark.parametrize(("case", "argv", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_configuration_is_one_clear_line(
    case: str, argv: list[str], text: str, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MELBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # a default `--out results` lands here, never in the repo
    sf.write(tmp_path / "a.wav", sine(440, 0.5, 16000), 16000)
    sf.write(tmp_path / "b.wav", sine(660, 0.5, 16000), 16000)
    for name, content in FILES.items():
        (tmp_path / name).write_text(content.replace("{tmp}", str(tmp_path)), encoding="utf-8")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2, case
    err = capsys.readouterr().err.strip()
    assert err.startswith("melbench: error: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert text in err, err


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--debug", "extract", "mel", str(tmp_path / "missing.wav")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("no such file or folder")
