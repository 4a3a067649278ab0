"""The GIF export in Chromium: the layer lives in the browser's view, and the GIF draws the one the
page shows."""

from PIL import Image

from tests.browser import browser_page, served_explorer


def test_gif_draws_the_layer_the_page_shows(tmp_path):
    """The layer lives in the browser's view: the GIF button sends it, so a 2-layer model's GIF shows
    the layer picked on the page (its name says which), not the server's default."""
    with served_explorer(tmp_path, names=("deep_gru",), training=False) as (url, _), \
            browser_page(url, accept_downloads=True) as pg:
        pg.wait_for_function("window.rnnviz.state('gen').layers.length === 2")
        got = {}
        for k in (0, 1):
            pg.select_option("#gen_layer", str(k))
            pg.wait_for_function(f"window.rnnviz.layer('gen') === {k}")
            with pg.expect_download(timeout=30_000) as info:
                pg.click("#gen_export_gif")
            assert info.value.suggested_filename.endswith(f"_layer{k + 1}.gif")
            with Image.open(info.value.path()) as im:
                im.seek(10)
                got[k] = im.convert("RGB").tobytes()
        assert got[0] != got[1]  # the gate grids of two layers
