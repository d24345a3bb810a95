"""Copy the README's pictures from a browser-test run into docs/images.

The browser tests (``tests/browser/test_widgets_in_lab.py``,
``test_training_in_lab.py`` and ``test_lab_layout.py``) save their screenshots
in ``test-artifacts/screenshots/``; this trims the empty margin (of the
page's background colour, white or the dark theme's), cuts the pixel column
where the editor's border touches the tree, and keeps each file under 150 KB
(256 colours when needed).

Example:
    .venv/bin/python -m pytest tests/browser/test_widgets_in_lab.py tests/browser/test_training_in_lab.py \
        tests/browser/test_lab_layout.py
    .venv/bin/python docs/images/copy_screenshots.py
"""

from pathlib import Path

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[2]
SOURCE, TARGET = ROOT / "test-artifacts" / "screenshots", ROOT / "docs" / "images"
LIMIT_BYTES = 150_000
# README name -> (screenshot name, pixels to cut on the right).
PICTURES = {
    "tree.png": ("tree-details", 0),
    "editor.png": ("editor-preview", 3),
    "editor_error.png": ("editor-error", 3),
    "monitor.png": ("monitor", 0),
    "lab_1050.png": ("lab-1050", 0),
    "lab_1400.png": ("lab-1400", 0),
    "lab_dark.png": ("lab-dark", 0),
}


def copy_picture(name: str, source: str, cut: int) -> Path:
    """Trim ``source``'s white margin (after cutting ``cut`` pixels on the right) and save it as ``name``."""
    image = Image.open(SOURCE / f"{source}.png").convert("RGB")
    image = image.crop((0, 0, image.width - cut, image.height))
    background = image.getpixel((image.width - 1, image.height - 1))  # white, or the dark theme's
    _, _, right, bottom = ImageChops.difference(image, Image.new("RGB", image.size, background)).getbbox()
    image = image.crop((0, 0, min(image.width, right + 8), min(image.height, bottom + 4)))
    target = TARGET / name
    image.save(target, optimize=True)
    if target.stat().st_size > LIMIT_BYTES:
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(target, optimize=True)
    return target


if __name__ == "__main__":
    missing = [f"{source}.png" for source, _ in PICTURES.values() if not (SOURCE / f"{source}.png").exists()]
    if missing:
        raise SystemExit(f"Expected screenshots {missing} in {SOURCE}; run the browser tests first (see above).")
    for name, (source, cut) in PICTURES.items():
        path = copy_picture(name, source, cut)
        print(f"{name:18} {Image.open(path).size} {path.stat().st_size // 1024} KB")
