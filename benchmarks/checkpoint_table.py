"""Print the README's checkpoint table from the checkpoints' own metadata (nothing typed by hand).

    python -m benchmarks.checkpoint_table [checkpoints/*.safetensors]
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnviz.checkpoint import read_metadata

ROOT = Path(__file__).resolve().parents[1]


def row(path: Path) -> str:
    meta = read_metadata(path)
    c, m = meta["config"], meta["metrics"]
    hw = m.get("hardware", {})
    where = hw.get("gpu") or f"CPU, {m.get('train_config', {}).get('threads') or hw.get('threads', '?')} thread(s)"
    minutes = m.get("train_seconds", 0) / 60
    origin = m.get("init_from") if isinstance(m.get("init_from"), dict) else None
    grown = (f" (grown from a {origin.get('hidden')}-unit model trained {(origin.get('train_seconds') or 0) / 60:.0f} min, "
             f"{origin.get('step') or 0:,} steps)" if origin else "")
    model = f"{c.cell.upper()} {c.layers}x{c.hidden}, head {c.head_hidden}"
    if c.latent:
        model = f"VAE: CNN encoder, z {c.latent}; {model}"
    protocol = m.get("test_nll_protocol", "")
    how = (protocol.split(" (")[0].replace("importance-weighted bound, ", "IW bound, ").replace(" samples of q(z|x)", "")
           if c.latent else "exact marginal" if c.num_classes else "exact")
    return (f"| `{path.name}` | {model} | "
            f"{m.get('parameters', 0) / 1e6:.2f} M | {path.stat().st_size / 2**20:.1f} MB | "
            f"{minutes:.0f} min, {m.get('step', 0):,} steps, {where}{grown} | **{m.get('test_nll')}** ({how}) |")


def main(paths=None):
    paths = [Path(p) for p in (paths or sys.argv[1:])] or sorted((ROOT / "checkpoints").glob("*.safetensors"))
    print("| checkpoint | model | parameters | file | training | test NLL (nats) |")
    print("|---|---|---|---|---|---|")
    for p in paths:
        print(row(p))


if __name__ == "__main__":
    main()
