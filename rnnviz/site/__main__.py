"""python -m rnnviz.site --checkpoint A.safetensors [--checkpoint B ...] --out DIR [--app-url URL]"""

from __future__ import annotations

import argparse
import sys

from ..checkpoint import CheckpointError
from . import export_site, site_files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnnviz.site", description=(
        "Write a static explorer (index.html, JavaScript, CSS, weights) that runs the model in the "
        "visitor's browser: serve DIR with any web server, or push it as a Hugging Face Static Space."))
    ap.add_argument("--checkpoint", action="append", default=None, metavar="PATH",
                    help="a .safetensors checkpoint (repeat for several; default: the shipped LSTM, GRU and RNN)")
    ap.add_argument("--out", required=True, metavar="DIR", help="folder to write the site into")
    ap.add_argument("--app-url", default=None, metavar="URL",
                    help="link to the full Gradio app shown on the page (none by default)")
    ap.add_argument("--title", default="rnnviz static explorer")
    args = ap.parse_args(argv)
    try:
        manifest = export_site(args.checkpoint, args.out, args.app_url, args.title)
    except (CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = site_files(args.out)
    from pathlib import Path

    size = sum((Path(args.out) / f).stat().st_size for f in files)
    print(f"wrote {len(files)} files ({size / 2**20:.2f} MB) to {args.out}: "
          f"{', '.join(m['name'] for m in manifest['models'])}")
    print(f"serve it: python -m http.server -d {args.out}  (then open http://localhost:8000/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
