"""Print the README's checkpoint table from the checkpoints' own metadata (nothing typed by hand).

    python -m benchmarks.checkpoint_table [checkpoints/*.safetensors]
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnviz.checkpoint import read_metadata

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = {None, "", "x86_64", "AMD64", "aarch64", "arm64", "i386", "i686"}


def origins(metrics: dict, most: int = 8) -> list[dict]:
    """The models a checkpoint was grown from (``init_from``), nearest first: each source's own
    training counts in the cost of the one grown from it."""
    chain, o = [], metrics.get("init_from")
    while isinstance(o, dict) and len(chain) < most:
        chain.append(o)
        o = o.get("init_from")
    return chain


def row(path: Path) -> str:
    meta = read_metadata(path)
    c, m = meta["config"], meta["metrics"]
    hw = m.get("hardware", {})
    cpu = hw.get("cpu") if hw.get("cpu") not in ARCHITECTURES else None  # older files: only the architecture
    where = hw.get("gpu") or (f"CPU{f' ({cpu})' if cpu else ''}, "
                              f"{m.get('train_config', {}).get('threads') or hw.get('threads', '?')} thread(s)")
    minutes = m.get("train_seconds", 0) / 60
    grown, size = "", (c.hidden, c.head_hidden)
    for o in origins(m):  # a same-size source was continued with a new recipe, a smaller one grown
        verb = "started from" if (o.get("hidden"), o.get("head_hidden")) == size else "grown from"
        grown += (f" ({verb} a {o.get('hidden')}-unit model trained {(o.get('train_seconds') or 0) / 60:.0f} min, "
                  f"{o.get('step') or 0:,} steps)")
        size = (o.get("hidden"), o.get("head_hidden"))
    model = f"{c.cell.upper()} {c.layers}x{c.hidden}, head {c.head_hidden}" + ("" if c.order == "rows" else f", order {c.order}")
    if c.latent:
        model = f"VAE: CNN encoder, z {c.latent}; {model}"
    protocol = m.get("test_nll_protocol", "")
    nll = f"{m['test_nll']:.3f}" if isinstance(m.get("test_nll"), (int, float)) else m.get("test_nll")  # 79.1 as 79.100
    how = (protocol.split(" (")[0].replace("importance-weighted bound, ", "IW bound, ").replace(" samples of q(z|x)", "")
           if c.latent else "exact marginal" if c.num_classes else "exact")
    return (f"| `{path.name}` | {model} | "
            f"{m.get('parameters', 0) / 1e6:.2f} M | {path.stat().st_size / 2**20:.1f} MB | "
            f"{minutes:.0f} min, {m.get('step', 0):,} steps, {where}{grown} | **{nll}** ({how}) |")


def main(paths=None):
    paths = [Path(p) for p in (paths or sys.argv[1:])] or sorted((ROOT / "checkpoints").glob("*.safetensors"))
    print("| checkpoint | model | parameters | file | training | test NLL (nats) |")
    print("|---|---|---|---|---|---|")
    for p in paths:
        print(row(p))


if __name__ == "__main__":
    main()
