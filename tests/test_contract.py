"""The contract checker over every discovered upstream, broken adapters, and discovery."""

import importlib.util
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.check import check_upstream
from benchmark.contract import CONTRACT, check_module
from benchmark.errors import MelbenchError
from benchmark.registry import available_upstreams, load_module, load_upstream
from upstreams import _template

# Options that let an upstream be checked without a pretrained checkpoint. An upstream file
# may define `CHECK_OPTIONS` (e.g. a tiny random model); every discovered one is checked.
ALL_UPSTREAMS = sorted(available_upstreams())


@pytest.mark.parametrize("name", ALL_UPSTREAMS)
def test_every_upstream_passes_the_checker(name: str) -> None:
    module = load_module(name)
    missing = [pkg for pkg in getattr(module, "REQUIRES", ()) if importlib.util.find_spec(pkg) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} (an optional extra), not installed")
    upstream = load_upstream(name, dict(getattr(module, "CHECK_OPTIONS", {})))
    failures = [f"{r.name}: {r.detail}" for r in check_module(module) + check_upstream(upstream) if not r.passed]
    assert not failures, failures


def test_module_names_are_checked_against_the_contract_table() -> None:
    bad = types.ModuleType("bad_upstream")
    bad.ARGUMENT, bad.CODE_OPTIONS, bad.SPEC = 3, "target", object()
    results = {r.name: r for r in check_module(bad)}
    assert results["module load"].detail == "expected a function load(**options) returning the upstream, got nothing"
    assert results["module ARGUMENT"].detail == "expected the option name a NAME:VALUE name fills (a str), got int"
    assert "got str" in results["module CODE_OPTIONS"].detail and not results["module SPEC"].passed
    assert not any(r.passed for r in results.values())
    # the README's table names exactly the names of the contract
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("Every module-level name the harness reads from an upstream module")[1].split("\n\n")[1]
    names = [line.split("`")[1].split("(")[0] for line in table.splitlines()[2:]]
    assert names == [entry.name for entry in CONTRACT]


def test_mel_is_discovered_and_template_is_not() -> None:
    assert "mel" in ALL_UPSTREAMS
    assert "_template" not in ALL_UPSTREAMS


def test_template_passes_the_checker() -> None:
    assert all(r.passed for r in check_upstream(_template.load(hidden_dim=16)))


class Broken:
    """Violates the contract in configurable ways."""

    sample_rate = 16000
    frame_rate = 100.0
    feature_dim = 8
    num_layers = 1

    def __init__(self, fault: str):
        self.fault = fault
        if fault == "loose_tolerance":
            self.batch_tolerance = 0.5

    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        frames = 1 + len(wave) // 160
        if self.fault == "half_rate":
            frames = 1 + len(wave) // 320
        out = torch.ones(frames, self.feature_dim)
        if self.fault == "numpy":
            return out.numpy()
        if self.fault == "float64":
            return out.double()
        if self.fault == "nan" and wave.abs().max() == 0:
            out[0, 0] = float("nan")
        if self.fault == "random":
            out = torch.randn(frames, self.feature_dim)
        if self.fault == "wrong_dim":
            out = torch.ones(frames, 5)
        if self.fault == "crash_short" and len(wave) < 400:
            raise RuntimeError("input too short for the window")
        return out.unsqueeze(0) if layers else out


@pytest.mark.parametrize(
    "fault,check,message",
    [
        ("half_rate", "frames vs duration", "expected 37.0 +- 1 frames for 0.37 s, got 19"),
        ("numpy", "frames vs duration", "expected a float32 torch.Tensor (n_frames, feature_dim), got numpy.ndarray"),
        ("float64", "determinism", "got torch.Tensor (101, 8) torch.float64"),
        ("nan", "silence", "expected finite features, got 1 NaN/Inf values"),
        ("random", "determinism", "expected identical output on repeat"),
        ("wrong_dim", "determinism", "expected feature_dim 8 (declared), got 5"),
        ("crash_short", "very short input", "extract raised RuntimeError: input too short"),
        ("loose_tolerance", "batch vs single", "expected batch_tolerance to be a float in [0.0001, 0.03125], got 0.5"),
    ],
)
def test_broken_adapter_fails_with_useful_message(fault: str, check: str, message: str) -> None:
    results = {r.name: r for r in check_upstream(Broken(fault))}
    assert not results[check].passed
    assert message in results[check].detail


class Rounded(Broken):
    """Batched features 1e-3 off the single ones, as a bf16 model's are after a flipped rounding."""

    def __init__(self, batch_tolerance: float | None):
        super().__init__("none")
        if batch_tolerance is not None:
            self.batch_tolerance = batch_tolerance

    def extract_batch(self, waves: torch.Tensor, lengths: torch.Tensor, layers: bool = False) -> tuple:
        feats = torch.stack([self.extract(w) for w in waves]) + 1e-3  # (B, T, D)
        return feats, 1 + lengths // 160


@pytest.mark.parametrize("tolerance,passed", [(None, False), (1e-4, False), (2e-3, True)])
def test_declared_batch_tolerance_is_applied(tolerance: float | None, passed: bool) -> None:
    result = {r.name: r for r in check_upstream(Rounded(tolerance))}["batch vs single"]
    assert result.passed == passed, result.detail
    assert ("max diff 1.0" in result.detail) if passed else ("got max diff 1.00e-03" in result.detail)


def test_bad_facts_are_reported() -> None:
    up = Broken("none")
    up.sample_rate = 16000.0
    results = check_upstream(up)
    assert "expected sample_rate to be a positive int, got 16000.0" in results[0].detail
    assert not any(r.passed for r in results)


def test_new_file_in_a_folder_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "loud_mel.py").write_text(
        textwrap.dedent(
            '''
            """Log-Mel plus ten: a user's upstream in their own folder."""
            from benchmark.upstream import Upstream
            from upstreams import mel

            class Loud(Upstream):
                def __init__(self):
                    self.inner = mel.load()
                    self.sample_rate, self.frame_rate, self.feature_dim = 16000, 100.0, 80

                def extract(self, wave, layers=False):
                    return self.inner.extract(wave, layers) + 10

            def load():
                return Loud()
            '''
        )
    )
    (tmp_path / "_helper.py").write_text("x = 1\n")
    monkeypatch.setenv("MELBENCH_UPSTREAM_PATH", str(tmp_path))
    assert "loud_mel" in available_upstreams() and "_helper" not in available_upstreams()
    up = load_upstream("loud_mel")
    assert all(r.passed for r in check_upstream(up))


def test_dotted_module_path_and_unknown_names() -> None:
    assert load_upstream("upstreams.mel").feature_dim == 80
    with pytest.raises(MelbenchError, match="unknown upstream 'nope'; known: .*mel"):
        load_upstream("nope")
    with pytest.raises(MelbenchError, match="cannot be imported"):
        load_upstream("no.such.module")
    with pytest.raises(MelbenchError, match="unknown mel option 'bins'; known: f_max_hz, f_min_hz, hop_s, n_mels, sr_hz, win_s"):
        load_upstream("mel", {"bins": 3})
    with pytest.raises(MelbenchError, match="mel option 'n_mels': expected int, got '80'"):
        load_upstream("mel", {"n_mels": "80"})


def test_chunked_extraction_matches_frame_count_and_centres() -> None:
    from benchmark.upstream import extract_chunked

    up = load_upstream("mel")
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32))
    whole = up.extract(wave)
    up.max_input_s = 1.0  # force 5 chunks of 100 hops
    chunked = extract_chunked(up, wave)
    assert chunked.shape == whole.shape
    # Frames away from the cuts see the same audio; only the ~2 frames at each cut differ
    # (the zero padding at a chunk edge replaces the neighbouring chunk's samples).
    differs = (chunked - whole).abs().amax(1) > 1e-3
    assert set(np.nonzero(differs.numpy())[0]) <= {c + d for c in (100, 200, 300, 400) for d in (-2, -1, 0, 1)}
