"""Render the app icon (``resources/icons/app.svg``) into the PNG and ICO files installers need.

    python scripts/make_icons.py [--out build/app/icons]

Writes ``deal-monitor.png`` (256 px, for the Linux menu entry), ``deal-monitor-<n>.png`` for
each size, and ``deal-monitor.ico`` (16–256 px, PNG-compressed entries: what Windows Vista and
later read) for the Windows executable and installer. Generated at build time, never committed:
the SVG is the source. Uses QtSvg from the PySide6 wheel, nothing else.
"""

from __future__ import annotations

import argparse
import os
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "icons" / "app.svg"
SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
NAME = "deal-monitor"


def render_png(svg: Path, size: int, out: Path) -> bytes:
    """Draw the SVG at ``size`` × ``size`` pixels into the PNG file ``out``; returns its bytes."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"cannot read {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out), "PNG"):
        raise ValueError(f"cannot write {out}")
    return out.read_bytes()


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO file holding one PNG image per size (ICONDIR, ICONDIRENTRY × n, the images)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, images = b"", b""
    for size in sizes:
        png = pngs[size]
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset)
        images += png
        offset += len(png)
    return header + entries + images


def make_icons(out: Path, svg: Path = SOURCE) -> list[Path]:
    """Write the PNGs and the ICO into ``out``; returns the files written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - Qt needs one
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{NAME}-{size}.png" for size in SIZES]
    pngs = {size: render_png(svg, size, path) for size, path in zip(SIZES, written, strict=True)}
    main_png = out / f"{NAME}.png"
    main_png.write_bytes(pngs[256])
    ico = out / f"{NAME}.ico"
    ico.write_bytes(ico_bytes({s: pngs[s] for s in (16, 20, 24, 32, 40, 48, 64, 256)}))
    return [*written, main_png, ico]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "app" / "icons")
    args = parser.parse_args()
    for path in make_icons(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
