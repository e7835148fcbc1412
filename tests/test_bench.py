"""The FLOP count behind MFU; `melbench bench` end to end; its allocator setting."""

import ctypes
import dataclasses
import json
import platform
import resource
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.cli import main
from benchmark.perf.bench import bf16_unsupported
from benchmark.perf.common import reference
from benchmark.perf.models import fake_mel, malloc_without_mmap, step_flops
from benchmark.registry import default_upstreams, load_module
from upstreams._transformer import plain_attention


def test_step_flops_matches_torch_flop_counter() -> None:
    spec = load_module(reference().upstream).SPEC  # the model the bench compares
    config = dataclasses.replace(spec.config("tiny"), dropout=0.0)
    model = spec.model_cls(config).train()
    mel = fake_mel(2, 150, torch.device("cpu"))
    # torch's counter sees the attention products only as explicit matmuls (the plain path)
    with FlopCounterMode(display=False) as counter, plain_attention():
        loss, _ = model(mel, torch.tensor([150, 150]))
        loss.backward()
    assert counter.get_total_flops() == step_flops(config, 2, 150)


def test_bench_quick_writes_the_ratios(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    record = json.loads((out / "bench.json").read_text())
    printed = capsys.readouterr().out
    assert "ratio vs s3prl" in printed and "probes of one task" in printed
    assert record["probe_cache_ratio"] > 1  # the cache beats re-extraction on every epoch
    paths = record["probe_paths"]  # the layers' paths side by side change the time, not the choice
    assert paths["same_selection"] is True and record["probe_paths_ratio"] == paths["ratio"] > 0
    assert paths["one_after_another"]["repeats"] == 2 and "paths side by side" in printed
    for key in ("pretrain_ratio_vs_s3prl", "extract_ratio_vs_s3prl"):
        if record["s3prl_installed"]:
            assert record[key] > 0
        else:
            assert record[key] is None
    heap = record["without_mmap"]
    ratios = [record[f"{section}_ratio_vs_s3prl_without_mmap"] for section in ("pretrain", "extract")]
    if platform.libc_ver()[0] == "glibc":
        assert heap["pretrain"]["melbench"]["repeats"] == 2 and set(heap["extract"]["upstreams"]) == {reference().upstream}
        assert all((r is not None) == record["s3prl_installed"] for r in ratios)
    else:
        assert "skipped" in heap and ratios == [None, None]
    pre = record["pretrain"]["melbench"]
    assert pre["min_s"] <= pre["median_s"] <= pre["max_s"] and pre["repeats"] == 2
    assert set(record["extract"]["upstreams"]) == set(default_upstreams())  # every discovered one
    assert record["reference"] == {"library": "s3prl", "upstream": reference().upstream}
    assert [p["clip_s"] for p in record["scaling"]["by_length"]] == [1.0, 2.0]
    low = record["extract_bf16"]
    if bf16_unsupported(torch.device("cpu")):
        assert low == {"skipped": bf16_unsupported(torch.device("cpu"))} and record["extract_ratio_vs_s3prl_bf16"] is None
        assert "extraction under bf16 autocast: skipped" in printed
    else:
        assert low["precision"] == "bf16" and "mel" in low["without_precision_option"]  # no precision option
        assert {*low["upstreams"], *low["without_precision_option"]} == set(record["extract"]["upstreams"])
        assert 0 < low["feature_error_vs_float32"]["worst_layer_relative_rms"] < 1e-2
        assert (record["extract_ratio_vs_s3prl_bf16"] is not None) == record["s3prl_installed"]
        assert "extraction under bf16 autocast, both sides" in printed


def _faults(rounds: int = 10) -> int:
    """Minor page faults of filling and freeing a fresh 64 MiB tensor `rounds` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.ones(16 << 20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mmapped_bytes_of_a_2gib_block() -> int:
    """How much glibc's mmapped total grows while an (untouched) 2 GiB tensor is held."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    before = mallinfo2().hblkhd
    block = torch.empty(1 << 29)  # noqa: F841 (held while measured)
    return mallinfo2().hblkhd - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_without_mmap_reuses_freed_pages() -> None:
    assert _mmapped_bytes_of_a_2gib_block() >= 1 << 31  # glibc's default: a block this large is mmapped
    with malloc_without_mmap() as active:
        assert active
        assert _mmapped_bytes_of_a_2gib_block() == 0  # from the heap
        _faults()  # the heap grows until torch's 64-byte-aligned blocks fit in freed space
        assert _faults() < (64 << 20) // resource.getpagesize()  # then freed pages are reused: < 1 round's worth
    assert _mmapped_bytes_of_a_2gib_block() >= 1 << 31  # defaults restored


