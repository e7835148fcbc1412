"""Real music recordings for pretraining: the Debian game-music packages, fetched with
`apt-get download` and unpacked with `dpkg-deb -x` into the build cache (never installed),
then decoded and resampled to 16 kHz FLAC."""

import shutil
import subprocess
import sys
import zipfile
from multiprocessing import get_context
from pathlib import Path

import soundfile as sf

from benchmark.audio import load_audio
from benchmark.data.common import SR_HZ, BuildContext, rel, write_audio, write_jsonl
from benchmark.errors import MelbenchError

PACKAGES = ("wesnoth-1.16-music", "ufoai-music", "warzone2100-music", "nexuiz-music", "singularity-music")
_AUDIO = (".ogg", ".opus", ".mp3", ".flac", ".wav")


def fetch(package: str, cache: Path) -> Path:
    """Download and unpack one package (once).

    Returns:
        The folder it was unpacked into.

    Raises:
        MelbenchError: apt-get or dpkg-deb failed (no network, unknown package).
    """
    unpacked = cache / "debs" / package
    if (unpacked / ".unpacked").exists():
        return unpacked
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
    files = sorted(debs.glob(f"{package}_*.deb"))
    if got.returncode != 0 or not files:
        reason = (got.stderr.strip().splitlines() or ["no .deb file"])[-1]
        raise MelbenchError(f"`apt-get download {package}` failed: {reason}")
    subprocess.run(["dpkg-deb", "-x", str(files[-1]), str(unpacked)], check=True)
    files[-1].unlink()  # the unpacked tree is what we keep
    (unpacked / ".unpacked").write_text("")
    return unpacked


def tracks(unpacked: Path) -> list[Path]:
    """Audio files of an unpacked package; `.pk3` archives (zip files) are extracted first."""
    for pk3 in sorted(unpacked.rglob("*.pk3")):
        target = pk3.with_suffix(".pk3.d")
        if not target.exists():
            with zipfile.ZipFile(pk3) as z:
                members = [m for m in z.namelist() if m.lower().endswith(_AUDIO)]
                z.extractall(target, members)
    return sorted(p for p in unpacked.rglob("*") if p.suffix.lower() in _AUDIO and p.is_file())


def _decode(src: Path, dst: Path) -> str | None:
    """Decode one track to 16 kHz FLAC; returns an error line instead of raising."""
    if dst.exists():
        return None
    try:
        write_audio(dst, load_audio(src, SR_HZ))
    except MelbenchError as err:
        return str(err)
    return None


def build_games(ctx: BuildContext, workers: int = 2) -> dict[str, int]:
    """Fetch, unpack and decode every game-music package that can be had.

    A package that cannot be downloaded is reported on stderr (with the command to try) and
    skipped; the rest of the build goes on.

    Returns:
        {"tracks": tracks decoded, "packages": packages used}; the corpus records go to
        `parts/games.jsonl`.
    """
    records: list[dict] = []
    used = 0
    for package in PACKAGES:
        try:
            unpacked = fetch(package, ctx.cache)
        except MelbenchError as err:
            print(f"melbench: warning: skipping game music {package}: {err}", file=sys.stderr)
            continue
        used += 1
        jobs = []
        for src in tracks(unpacked):
            name = "-".join(src.relative_to(unpacked).with_suffix("").parts[-2:])
            jobs.append((src, ctx.audio / "games" / package / f"{name}.flac"))
        # spawn, not fork: the parent has already run torch (resampling speech), and a forked
        # child that touches torch's thread pool again hangs (measured: the build stalled).
        with get_context("spawn").Pool(workers) as pool:
            errors = pool.starmap(_decode, jobs, chunksize=1)
        for (src, dst), error in zip(jobs, errors):
            if error:
                print(f"melbench: warning: {error}", file=sys.stderr)
                continue
            records.append({"id": f"{package}/{dst.stem}", "path": rel(dst, ctx.root), "group": f"track:{package}/{dst.stem}",
                            "source_item": f"track:{package}/{dst.stem}", "collection": package,
                            "duration_s": sf.info(str(dst)).duration})
        if not any(errors):
            shutil.rmtree(unpacked)  # ~800 MB in all; decoded tracks are reused if the step reruns
    write_jsonl(ctx.root / "parts" / "games.jsonl", records)
    return {"tracks": len(records), "packages": used}
