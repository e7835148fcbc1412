"""`load_dataset`: one entry point for embedded datasets, built folders, users' CSV manifests
and public datasets read from a local copy (`LOADER:PATH`)."""

import sys
from pathlib import Path

from benchmark.data.common import DATASETS, data_root
from benchmark.data.manifest import Dataset, load_dataset_dir
from benchmark.errors import MelbenchError



def load_dataset(name_or_path: str, quick: bool = False, seed: int = 0) -> Dataset:
    """Resolve a dataset.

    Args:
        name_or_path: an embedded name (`benchmark.data.common.DATASETS`), a folder with dataset.json +
            manifest.jsonl, a CSV/TSV manifest (bring your own, see `benchmark.data.byo`), or
            `LOADER:PATH` for a public dataset (see `benchmark.data.public.LOADERS`).
        quick: use the quick build of embedded datasets.
        seed: seed of splits made for data that has none.

    Returns:
        The dataset. Bad rows of a user manifest are reported on stderr and left out.

    Raises:
        MelbenchError: nothing matches, the dataset is not built, or no usable row remains.
    """
    from benchmark.data.byo import load_manifest
    from benchmark.data.public import LOADERS

    if name_or_path in DATASETS:
        folder = data_root(quick) / name_or_path
        if not (folder / "manifest.jsonl").exists():
            flag = " --quick" if quick else ""
            raise MelbenchError(f"dataset {name_or_path!r} is not built; run `melbench data build{flag}`")
        return load_dataset_dir(folder)
    loader, sep, rest = name_or_path.partition(":")
    if sep and loader in LOADERS:
        return LOADERS[loader](Path(rest), seed=seed)
    path = Path(name_or_path)
    if path.is_dir():
        return load_dataset_dir(path)
    if path.is_file():
        dataset, problems = load_manifest(path, seed=seed)
        for problem in problems:
            print(f"melbench: warning: {problem}", file=sys.stderr)
        if problems:
            print(f"melbench: warning: {path}: dropped {len(problems)} bad row(s), kept {len(dataset.items)} item(s)",
                  file=sys.stderr)
        return dataset
    known = ", ".join(DATASETS)
    raise MelbenchError(f"{name_or_path!r} is not an embedded dataset ({known}), a folder, a manifest "
                        f"file or LOADER:PATH ({', '.join(LOADERS)})")
