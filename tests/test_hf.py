"""Hugging Face `transformers` waveform models as upstreams (`hf:FOLDER`): tiny randomly initialised
models built from transformers' own config classes, saved with `save_pretrained`."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("transformers", reason="the hf upstream needs transformers (pip install -e '.[hf]')")

from benchmark.check import check_upstream  # noqa: E402
from benchmark.cli import main  # noqa: E402
from benchmark.errors import MelbenchError  # noqa: E402
from benchmark.registry import load_upstream  # noqa: E402
from benchmark.runs import read_runs  # noqa: E402
from upstreams.hf import TINY_FAMILIES, tiny_model  # noqa: E402

DEMO_TASKS = str(Path(__file__).parent / "demo_tasks.yaml")


@pytest.mark.parametrize("masks", [True, False], ids=["layer-norm+masks", "group-norm"])
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_family_meets_the_contract_on_the_model_own_hidden_states(family: str, masks: bool,
                                                                         tmp_path: Path) -> None:
    import transformers

    folder = tiny_model(tmp_path / family, family, attention_mask=masks)
    upstream = load_upstream(f"hf:{folder}")
    assert (upstream.sample_rate, upstream.frame_rate, upstream.num_layers, upstream.feature_dim) == (16000, 50.0, 3, 32)
    assert not [r.detail for r in check_upstream(upstream) if not r.passed]  # batch == single, frames vs duration
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, 24000).astype(np.float32))
    feats = upstream.extract(wave, layers=True)  # (3, 1 + 24000 // 320, 32)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    with torch.no_grad():
        inputs = extractor(wave.numpy(), sampling_rate=16000, return_tensors="pt")
        theirs = torch.stack(model(inputs["input_values"], output_hidden_states=True).hidden_states)[:, 0]  # (3, T', 32)
    # receptive field 325 samples: model frame j is centred 162 samples after 320 j, nearest to melbench frame j + 1
    assert feats.shape == (3, 1 + 24000 // 320, 32) and theirs.shape[1] == 74
    index = (torch.arange(feats.shape[1]) - 1).clamp(0, theirs.shape[1] - 1)
    torch.testing.assert_close(feats, theirs[:, index], atol=1e-4, rtol=1e-4)
    assert upstream.batched == (masks and family != "data2vec-audio")  # data2vec-audio lets padding in


def test_hf_folders_run_in_the_leaderboard_and_are_refused_in_one_line(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    folder = tiny_model(tmp_path / "w2v", "wav2vec2")
    out = tmp_path / "results"
    assert main(["run", "--upstreams", f"mel,hf:{folder}", "--tasks-file", DEMO_TASKS, "--quiet", "--out", str(out),
                 "--no-layer-sweep"]) == 0
    rows = [r for r in read_runs(out / "runs.jsonl") if r["upstream"] == f"hf:{folder}"]
    assert len(rows) == 6 and rows[0]["checkpoint_sha256"]  # the folder's files are part of the cache key
    assert rows[0]["upstream_provenance"]["hf_model"] == "Wav2Vec2Model"
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (pickled / name).write_text((folder / name).read_text())
    torch.save({}, pickled / "pytorch_model.bin")
    cases = {tmp_path / "nothing": "expected a model folder with config.json",
             pickled: "no .safetensors weights (found: pytorch_model.bin); melbench does not unpickle"}
    for bad, message in cases.items():
        capsys.readouterr()
        assert main(["extract", f"hf:{bad}", str(wav), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_models_that_ship_their_code_need_trust_remote_code(tmp_path: Path) -> None:
    folder = tiny_model(tmp_path / "custom", "wav2vec2")  # then made into a model with its own classes, as MERT is
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tinyaudio", architectures=["TinyModel"],
                  auto_map={"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_tiny.py").write_text(
        "from transformers import Wav2Vec2Config\n\n\nclass TinyConfig(Wav2Vec2Config):\n    model_type = 'tinyaudio'\n")
    (folder / "modeling_tiny.py").write_text(
        "from transformers import Wav2Vec2Model\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyModel(Wav2Vec2Model):\n    config_class = TinyConfig\n")
    with pytest.raises(MelbenchError, match="contains custom code.*set --set trust_remote_code=true"):
        load_upstream(f"hf:{folder}")
    upstream = load_upstream(f"hf:{folder}", {"trust_remote_code": True})
    assert type(upstream.model).__name__ == "TinyModel"
    assert not [r.detail for r in check_upstream(upstream) if not r.passed]
