"""Image input: formats by content, IAI size limits, EXIF, pixel formats, Url fetching."""

from __future__ import annotations

import base64
import http.server
import io
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import needs_dir
from PIL import Image

from openiai.core.errors import ApiError
from openiai.vision import image as vimage
from openiai.vision.image import decode_base64, decode_bytes, load_image

DATA = Path(os.environ.get("OPENIAI_TESTDATA") or Path(__file__).resolve().parents[1] / "../shared/faces")
needs_data = needs_dir(DATA)  # fails, not skips, without the shared images


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    assert info.value.message  # a clear sentence for Error.Message
    return info.value.code


def png_bytes(h: int, w: int, channels: int = 3, dtype=np.uint8) -> bytes:
    shape = (h, w) if channels == 1 else (h, w, channels)
    ok, buf = cv2.imencode(".png", np.full(shape, 100, dtype))
    assert ok
    return buf.tobytes()


# ------------------------------------------------------------------ formats (CompreFace set)

FORMAT_OUTCOMES = {
    "einstein.jpeg": "JPEG",
    "einstein.png": "PNG",
    "einstein.bmp": "BMP",
    "einstein.gif": "FailedOperation.ImageDecodeFailed",
    "einstein.ico": "FailedOperation.ImageDecodeFailed",
    "einstein.tiff": "FailedOperation.ImageDecodeFailed",
    "einstein.webp": "FailedOperation.ImageDecodeFailed",
    "corrupted.png": "FailedOperation.ImageDecodeFailed",
    "empty.png": "FailedOperation.ImageDecodeFailed",
    "truncated.jpg": "FailedOperation.ImageDecodeFailed",
}


@needs_data
def test_every_format_test_file_has_a_known_outcome():
    folder = DATA / "compreface/format_tests"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FORMAT_OUTCOMES)


@needs_data
@pytest.mark.parametrize("name,expected", sorted(FORMAT_OUTCOMES.items()))
def test_format_outcome(name, expected):
    data = (DATA / "compreface/format_tests" / name).read_bytes()
    if expected.startswith("FailedOperation"):
        assert code_of(decode_bytes, data) == expected
        # same outcome through the base64 path
        assert code_of(decode_base64, base64.b64encode(data).decode()) == expected
    else:
        img = decode_base64(base64.b64encode(data).decode())
        assert img.format == expected
        assert img.pixels.dtype == np.uint8 and img.pixels.shape == (256, 256, 3)


@needs_data
def test_refusal_names_the_format():
    with pytest.raises(ApiError) as info:
        decode_bytes((DATA / "compreface/format_tests/einstein.gif").read_bytes())
    assert "GIF" in info.value.message


@needs_data
def test_format_comes_from_bytes_not_name():
    # WEBP data named .jpg is refused; PNG data named .jpg is accepted as PNG.
    assert code_of(decode_bytes, (DATA / "deepface/dataset/img47.jpg").read_bytes()) == "FailedOperation.ImageDecodeFailed"
    img = decode_bytes((DATA / "insightface/inspireface_test_res/data/bulk/jntm.jpg").read_bytes())
    assert img.format == "PNG"


@needs_data
def test_same_picture_in_three_formats_decodes_alike():
    folder = DATA / "compreface/format_tests"
    jpeg = decode_bytes((folder / "einstein.jpeg").read_bytes()).pixels.astype(int)
    png = decode_bytes((folder / "einstein.png").read_bytes()).pixels.astype(int)
    bmp = decode_bytes((folder / "einstein.bmp").read_bytes()).pixels.astype(int)
    assert np.abs(png - bmp).mean() < 4.0  # the upstream files differ slightly; a channel swap gives > 10
    assert np.abs(png - jpeg).mean() < 8.0


# ------------------------------------------------------------------ pixel formats


@needs_data
def test_rgba_png_becomes_bgr():
    img = decode_bytes((DATA / "face_recognition/tests/test_images/32bit.png").read_bytes())
    assert img.pixels.shape[2] == 3 and img.pixels.dtype == np.uint8


@needs_data
def test_grayscale_png_becomes_three_equal_channels():
    path = next((DATA / "yalefaces/png").rglob("*.png"))
    img = decode_bytes(path.read_bytes())
    assert img.pixels.shape[2] == 3
    assert np.array_equal(img.pixels[:, :, 0], img.pixels[:, :, 2])


def test_sixteen_bit_png_is_scaled_not_clipped():
    raw = np.full((80, 80), 40000, np.uint16)
    ok, buf = cv2.imencode(".png", raw)
    img = decode_bytes(buf.tobytes())
    assert img.pixels.shape == (80, 80, 3)
    assert abs(int(img.pixels[0, 0, 0]) - round(40000 / 257)) <= 1


def test_palette_and_channel_order():
    rgb = Image.new("RGB", (70, 70), (255, 0, 0))  # pure red
    buf = io.BytesIO()
    rgb.convert("P").save(buf, "PNG")
    img = decode_bytes(buf.getvalue())
    assert tuple(img.pixels[0, 0]) == (0, 0, 255)  # BGR


def test_transparent_pixels_become_white():
    buf = io.BytesIO()
    Image.new("RGBA", (70, 70), (0, 0, 0, 0)).save(buf, "PNG")
    assert tuple(decode_bytes(buf.getvalue()).pixels[0, 0]) == (255, 255, 255)


@needs_data
def test_exif_orientation_is_applied():
    src = Image.open(DATA / "face-api.js/examples/images/angry.jpg").convert("RGB")
    w, h = src.size
    assert w != h
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    src.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    img = decode_bytes(buf.getvalue())
    assert (img.width, img.height) == (h, w)
    upright = cv2.rotate(np.asarray(src)[:, :, ::-1], cv2.ROTATE_90_CLOCKWISE)
    assert np.abs(img.pixels.astype(int) - upright.astype(int)).mean() < 6


# ------------------------------------------------------------------ limits


def test_short_side_63_is_too_small_64_is_fine():
    assert code_of(decode_bytes, png_bytes(63, 200)) == "FailedOperation.ImageResolutionTooSmall"
    assert decode_bytes(png_bytes(64, 200)).pixels.shape == (64, 200, 3)


def test_long_side_limits_depend_on_format():
    assert code_of(decode_bytes, png_bytes(64, 2001)) == "FailedOperation.ImageResolutionExceed"
    assert decode_bytes(png_bytes(64, 2000)).width == 2000
    ok, jpg = cv2.imencode(".jpg", np.zeros((64, 4000, 3), np.uint8))
    assert decode_bytes(jpg.tobytes()).width == 4000
    ok, jpg = cv2.imencode(".jpg", np.zeros((64, 4001, 3), np.uint8))
    assert code_of(decode_bytes, jpg.tobytes()) == "FailedOperation.ImageResolutionExceed"
    ok, bmp = cv2.imencode(".bmp", np.zeros((64, 2001, 3), np.uint8))
    assert code_of(decode_bytes, bmp.tobytes()) == "FailedOperation.ImageResolutionExceed"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize("side", [2001, 50000])
def test_decompression_bomb_png_is_refused_before_decoding(side):
    # 1 KB file declaring side x side RGB (7.5 GB at 50000): must fail fast, allocate nothing.
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    bomb = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    start = time.perf_counter()
    assert code_of(decode_bytes, bomb) == "FailedOperation.ImageResolutionExceed"
    assert time.perf_counter() - start < 0.5


def test_base64_over_5mb_is_refused_before_decoding():
    big = "A" * (5 * 1024 * 1024 + 4)
    assert code_of(decode_base64, big) == "FailedOperation.ImageSizeExceed"


def test_malformed_base64():
    assert code_of(decode_base64, "not base64 at all!!") == "FailedOperation.ImageDecodeFailed"
    assert code_of(decode_base64, "QUJD=") == "FailedOperation.ImageDecodeFailed"


def test_base64_with_data_url_prefix_and_newlines():
    data = base64.b64encode(png_bytes(70, 70)).decode()
    wrapped = "data:image/png;base64," + "\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    assert decode_base64(wrapped).format == "PNG"


def test_neither_image_nor_url_is_image_empty():
    assert code_of(load_image, None, None) == "InvalidParameterValue.ImageEmpty"
    assert code_of(load_image, "", "") == "InvalidParameterValue.ImageEmpty"


# ------------------------------------------------------------------ Url


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "example.com/a.jpg", "http://", "http://host:99999/"])
def test_illegal_urls(url):
    assert code_of(load_image, None, url) == "InvalidParameterValue.UrlIllegal"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/a.jpg", "http://localhost/a.jpg", "http://10.1.2.3/a.jpg", "http://169.254.169.254/latest/meta-data",
     "http://[::1]/a.jpg", "http://192.168.0.1/a.jpg", "http://0.0.0.0/a.jpg", "http://[::ffff:127.0.0.1]/a.jpg"],
)
def test_private_addresses_are_refused_by_default(url):
    with pytest.raises(ApiError) as info:
        load_image(None, url)
    assert info.value.code == "FailedOperation.ImageDownloadError"
    assert "private" in info.value.message


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, tuple[int, bytes, dict]] = {}

    def do_GET(self):  # noqa: N802
        status, body, headers = self.files.get(self.path, (404, b"missing", {}))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its byte cap, as it should

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.files = {
        "/face.png": (200, png_bytes(90, 120), {"Content-Type": "image/png"}),
        "/redirect": (302, b"", {"Location": "/face.png"}),
        "/big": (200, b"\xff\xd8\xff" + b"\0" * (vimage.MAX_IMAGE_BYTES + 10), {}),
        "/gif": (200, b"GIF89a" + b"\0" * 100, {}),
    }
    yield base
    httpd.shutdown()


def test_url_download_when_private_allowed(server):
    img = load_image(None, server + "/face.png", allow_private_urls=True)
    assert (img.format, img.width, img.height) == ("PNG", 120, 90)


def test_url_wins_over_image(server):
    other = base64.b64encode(png_bytes(200, 200)).decode()
    assert load_image(other, server + "/face.png", allow_private_urls=True).width == 120


def test_url_redirect_is_followed(server):
    assert load_image(None, server + "/redirect", allow_private_urls=True).width == 120


def test_url_errors(server):
    assert code_of(load_image, None, server + "/nothing", allow_private_urls=True) == "FailedOperation.ImageDownloadError"
    assert code_of(load_image, None, server + "/big", allow_private_urls=True) == "FailedOperation.ImageSizeExceed"
    assert code_of(load_image, None, server + "/gif", allow_private_urls=True) == "FailedOperation.ImageDecodeFailed"
    # nothing listens on port 9 of localhost: a connection failure, not a crash
    assert code_of(load_image, None, "http://127.0.0.1:9/x.jpg", allow_private_urls=True) == "FailedOperation.ImageDownloadError"
    assert code_of(load_image, None, "http://no-such-host.invalid/x.jpg") == "FailedOperation.ImageDownloadError"
