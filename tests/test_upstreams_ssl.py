"""The self-supervised upstreams: contract, masking statistics, batch vs single, loading rules."""

import pytest
import torch

from benchmark.check import check_upstream
from benchmark.errors import MelbenchError
from benchmark.pretraining.loop import PretrainOptions, pretrain
from benchmark.config import config_dict
from benchmark.registry import available_upstreams, load_module, load_upstream
from _ssl_fixtures import SSL_UPSTREAMS, write_corpus
from upstreams._masking import span_mask, time_alter
from upstreams._s3prl import to_s3prl
from upstreams._transformer import valid_mask


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A 3-step tiny checkpoint of every SSL upstream on a small synthetic corpus."""
    root = tmp_path_factory.mktemp("ssl")
    corpus = write_corpus(root / "audio", n_files=3, seconds=1.5)
    out = {}
    for name in SSL_UPSTREAMS:
        opts = PretrainOptions(name, corpus=str(corpus), preset="tiny", steps=3, out=root / name, progress=False)
        out[name] = pretrain(opts).out
    return out


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MELBENCH_HOME", str(tmp_path / "home"))


def test_all_upstreams_are_listed():
    # discovery by file name finds the built-in ones (the test lists above are derived from it)
    assert {"mel", "mockingjay", "audio_albert", "tera", "apc", "wav2vec"} <= set(available_upstreams())
    assert set(SSL_UPSTREAMS) >= {"mockingjay", "audio_albert", "tera", "apc", "wav2vec"}


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_check_passes_with_tiny_checkpoint(name, tiny_checkpoints):
    upstream = load_upstream(name, {"checkpoint": str(tiny_checkpoints[name])})
    results = check_upstream(upstream)
    assert all(r.passed for r in results), [(r.name, r.detail) for r in results if not r.passed]
    # The corpus statistics came from the checkpoint, not the identity default.
    assert not torch.allclose(upstream.model.mel_mean, torch.zeros_like(upstream.model.mel_mean))


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_padded_batch_equals_single_clips(name, tiny_checkpoints):
    upstream = load_upstream(name, {"checkpoint": str(tiny_checkpoints[name])})
    waves = [torch.randn(n) * 0.1 for n in (4000, 16000, 9000)]
    padded = torch.zeros(3, 16000)
    for i, w in enumerate(waves):
        padded[i, : len(w)] = w
    feats, frames = upstream.extract_batch(padded, torch.tensor([len(w) for w in waves]), layers=True)
    assert feats.shape[1] == upstream.num_layers
    for i, w in enumerate(waves):
        single = upstream.extract(w, layers=True)
        assert int(frames[i]) == single.shape[1]
        torch.testing.assert_close(feats[i, :, : single.shape[1]], single, atol=1e-4, rtol=1e-4)
        assert not feats[i, :, single.shape[1] :].any()  # padding frames are zeroed


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_bf16_passes_the_checker_and_stays_near_float32(name, tiny_checkpoints):
    options = {"checkpoint": str(tiny_checkpoints[name])}
    bf16 = load_upstream(name, {**options, "precision": "bf16"})
    results = check_upstream(bf16)
    assert all(r.passed for r in results), [(r.name, r.detail) for r in results if not r.passed]
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    ref, low = load_upstream(name, options).extract(wave, layers=True), bf16.extract(wave, layers=True)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    error = float((low - ref).norm() / ref.norm())
    assert 0 < error < 1e-2  # the matmuls did run in bf16 (~0.3% measured), and no further off


def test_precision_is_checked():
    with pytest.raises(MelbenchError, match="precision: expected one of float32, bf16, got 'fp16'"):
        load_upstream("tera", {"random_init": True, "preset": "tiny", "precision": "fp16"})


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_an_extraction_window_puts_each_equal_chunk_of_a_long_clip_through_the_model_alone(name):
    options = {"random_init": True, "preset": "tiny"}  # seed 0: the same weights with and without a window
    whole, cut = load_upstream(name, options), load_upstream(name, {**options, "extract_window_s": 0.4})
    assert (whole.sequence_length, cut.sequence_length) == (0, 40)
    rng = torch.Generator().manual_seed(1)
    long, short = torch.randn(16000, generator=rng) * 0.1, torch.randn(6000, generator=rng) * 0.1
    mel = whole.frontend(long[None])  # (1, 101, 80): the whole clip's frames, cut after the front-end
    chunks = torch.chunk(mel, 3, dim=1)  # ceil(101 / 40) = 3 equal chunks: 34, 34, 33 frames
    with torch.no_grad():
        expected = [torch.cat(layer, dim=1)[0] for layer in zip(
            *(whole.model.hidden_states(c, torch.tensor([c.shape[1]])) for c in chunks))]
    got = cut.extract(long, layers=True)  # (L, 101, D)
    assert got.shape == (whole.num_layers, 101, whole.feature_dim)
    torch.testing.assert_close(got, torch.stack(expected), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, whole.extract(long, layers=True), atol=1e-3)  # the cut is in effect
    torch.testing.assert_close(cut.extract(short, layers=True), whole.extract(short, layers=True))  # 38 frames: uncut
    results = check_upstream(cut)  # batch vs single with chunked clips in a padded batch, frames, determinism
    assert all(r.passed for r in results), [(r.name, r.detail) for r in results if not r.passed]


def test_an_extraction_window_is_checked():
    for bad in (-1.0, 0.001):
        with pytest.raises(MelbenchError, match=f"extract_window_s: expected 0 or at least one frame \\(0.01 s\\), "
                                                f"got {bad:g}"):
            load_upstream("tera", {"random_init": True, "preset": "tiny", "extract_window_s": bad})

    # s3prl cuts long inputs the same way by its `task.sequence_length`, which `to-s3prl` writes
    model = load_upstream("tera", {"random_init": True, "preset": "tiny", "extract_window_s": 0.5}).model
    assert to_s3prl(model, "tera")["Upstream_Config"]["task"]["sequence_length"] == 50


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_load_without_checkpoint_refuses_untrained_model(name):
    with pytest.raises(MelbenchError, match="melbench pretrain"):
        load_upstream(name, {"preset": "tiny"})


def test_load_uses_default_checkpoint(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "music", n_files=2, seconds=1.0)
    pretrain(PretrainOptions("apc", corpus=str(corpus), preset="tiny", steps=1, progress=False))
    upstream = load_upstream("apc", {"preset": "tiny", "corpus": "music"})
    assert upstream.feature_dim == 32


def test_overrides_are_type_checked():
    with pytest.raises(MelbenchError, match="hidden"):
        load_upstream("mockingjay", {"random_init": True, "preset": "tiny", "hidden": "wide"})
    with pytest.raises(MelbenchError, match="unknown"):
        load_upstream("mockingjay", {"random_init": True, "preset": "tiny", "hiden": 8})
    up = load_upstream("mockingjay", {"random_init": True, "preset": "tiny", "hidden": 16, "heads": 2})
    assert up.feature_dim == 16 and up.num_layers == 3


def test_conv_positions_keep_the_contract_and_carry_no_absolute_position(tmp_path):
    corpus = write_corpus(tmp_path / "audio", n_files=3, seconds=1.5)
    for name in ("mockingjay", "bestrq"):  # the reconstruction family and the code-prediction model
        out = pretrain(PretrainOptions(name, corpus=str(corpus), preset="tiny", steps=3, out=tmp_path / name,
                                       overrides={"positions": "conv", "conv_pos_kernel": 9, "conv_pos_groups": 4},
                                       progress=False)).out
        upstream = load_upstream(name, {"checkpoint": str(out)})
        assert upstream.model.embed.conv_positions is not None
        results = check_upstream(upstream)  # batch vs single, determinism, frames vs duration, no NaN
        assert all(r.passed for r in results), [(r.name, r.detail) for r in results if not r.passed]
    # The same frame repeated gives the same input embedding wherever the convolution sees no edge;
    # with sinusoidal positions every frame's embedding differs.
    frames = torch.ones(1, 40, 80)
    keep = torch.ones(1, 40, dtype=torch.bool)
    for positions, same in (("conv", True), ("sinusoidal", False)):
        model = load_upstream("mockingjay", {"random_init": True, "preset": "tiny", "positions": positions,
                                             "conv_pos_kernel": 9, "conv_pos_groups": 4}).model
        h = model.embed(frames, keep)[0]  # (T, D)
        assert torch.allclose(h[10], h[25], atol=1e-5) == same
    for bad in ({"conv_pos_kernel": 8}, {"conv_pos_kernel": -1}, {"conv_pos_groups": 0}, {"conv_pos_groups": 3}):
        with pytest.raises(MelbenchError, match="expected a positive odd kernel and positive groups dividing"):
            load_upstream("tera", {"random_init": True, "preset": "tiny", "positions": "conv", **bad})
    with pytest.raises(MelbenchError, match="positions"):
        load_upstream("tera", {"random_init": True, "preset": "tiny", "positions": "rotary"})
    with pytest.raises(MelbenchError, match="sinusoidal positions only"):
        to_s3prl(load_upstream("tera", {"random_init": True, "preset": "tiny", "positions": "conv"}).model, "tera")


def test_a_checkpoint_written_before_a_config_field_existed_keeps_that_codes_behaviour():
    spec = load_module("mockingjay").SPEC
    fields = config_dict(spec.config("small"))
    for added in ("positions", "conv_pos_kernel", "conv_pos_groups"):  # fields newer than the checkpoint
        del fields[added]
    assert spec.config("small").positions == "conv"  # today's preset
    assert spec.recorded_config(fields, "config.json").positions == "sinusoidal"  # what the old code ran


def test_albert_shares_weights():
    jay = load_upstream("mockingjay", {"random_init": True, "preset": "tiny"}).model
    albert = load_upstream("audio_albert", {"random_init": True, "preset": "tiny"}).model
    assert len(albert.encoder.layers) == 1 and albert.encoder.depth == len(jay.encoder.layers) == 2


def test_span_mask_statistics():
    torch.manual_seed(0)
    frames = torch.tensor([300, 700, 1000, 450] * 50)
    selected, _ = span_mask(frames, 1000, 0.15, 7)
    assert not (selected & ~valid_mask(frames, 1000)).any()
    fraction = selected.sum(1).float() / frames
    assert abs(float(fraction.mean()) - 0.15) < 0.01
    # Runs of selected frames are whole spans: their lengths are multiples of 7.
    padded = torch.nn.functional.pad(selected.int(), (1, 1))
    edges = padded.diff(dim=1)
    starts, ends = (edges == 1).nonzero(), (edges == -1).nonzero()
    assert torch.equal(starts[:, 0], ends[:, 0])
    assert ((ends[:, 1] - starts[:, 1]) % 7 == 0).all()


def test_time_alter_treatments():
    torch.manual_seed(0)
    x = torch.randn(400, 200, 8) + 5.0  # no frame is zero before alteration
    frames = torch.full((400,), 200)
    out, selected = time_alter(x, frames, 0.15, 7)
    zeroed = (out == 0).all(-1)
    unchanged = (out == x).all(-1)
    assert not (zeroed & ~selected).any() and (unchanged | selected).all()
    n = selected.sum()
    assert abs(float((zeroed & selected).sum() / n) - 0.8) < 0.05
    assert abs(float((unchanged & selected).sum() / n) - 0.1) < 0.04


def test_bestrq_targets_are_fixed_random_codes_stored_with_the_weights(tiny_checkpoints):
    spec = load_upstream("bestrq", {"random_init": True, "preset": "tiny"}).model
    other = load_upstream("bestrq", {"random_init": True, "preset": "tiny", "seed": 7}).model
    assert torch.equal(spec.codebook, other.codebook) and torch.equal(spec.projection, other.projection)
    assert not torch.equal(spec.head.weight, other.head.weight)  # only the weights follow the seed
    trained = load_upstream("bestrq", {"checkpoint": str(tiny_checkpoints["bestrq"])}).model
    assert torch.equal(trained.codebook, spec.codebook)  # read back from the checkpoint
    mel = torch.randn(2, 50, 80)
    codes = trained.targets((mel - trained.mel_mean) / trained.mel_std)
    assert codes.shape == (2, 50) and int(codes.max()) < trained.config.codebook_size
    assert len(codes.unique()) > 8  # frames spread over the codebook
