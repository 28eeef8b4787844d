"""Request images -> BGR pixels, with the IAI limits and error codes.

Outcomes (all :class:`~openiai.api.errors.ApiError`):

==========================================  ==================================================
neither Image nor Url                       InvalidParameterValue.ImageEmpty
Image (base64) longer than 5 MB             FailedOperation.ImageSizeExceed
Url body larger than 5 MB once base64'd     FailedOperation.ImageSizeExceed
malformed base64, empty or undecodable      FailedOperation.ImageDecodeFailed
GIF/WEBP/TIFF/ICO/other (sniffed bytes)     FailedOperation.ImageDecodeFailed (names the format)
long side > 4000 px (JPEG) / 2000 (others)  FailedOperation.ImageResolutionExceed
short side < 64 px                          FailedOperation.ImageResolutionTooSmall
Url not http(s) / malformed                 InvalidParameterValue.UrlIllegal
Url host private/loopback/link-local/...    FailedOperation.ImageDownloadError
Url network failure, HTTP error status      FailedOperation.ImageDownloadError
==========================================  ==================================================

Dimensions are read from the header and checked before any pixel is decoded, so a small
file declaring a huge canvas (a decompression bomb) costs nothing. EXIF orientation is
applied; alpha is composited onto white (what a viewer shows); 16-bit samples are scaled,
not clipped. A well-formed RGB or grey JPEG is decoded on demand (see "JPEG on demand"
below): at reduced size for detection, in full when its pixels are first read.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import socket
import warnings
from urllib.parse import urljoin, urlsplit

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps

from openiai.core import timing
from openiai.core.errors import ApiError, failed, value
from openiai.vision.types import DecodedImage

MAX_BASE64_CHARS = 5 * 1024 * 1024
# The doc limits Url images by their base64 size too: 5 MB of base64 is 3.75 MiB of bytes.
MAX_IMAGE_BYTES = MAX_BASE64_CHARS * 3 // 4
MAX_LONG_SIDE = {"JPEG": 4000, "PNG": 2000, "BMP": 2000}
MIN_SHORT_SIDE = 64

URL_CONNECT_TIMEOUT_S = 5.0
URL_READ_TIMEOUT_S = 10.0
URL_MAX_REDIRECTS = 3

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file is an error, not a grey bottom half

_REFUSED_FORMATS = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


def sniff_format(data: bytes) -> str | None:
    """The container format from magic bytes: 'JPEG', 'PNG', 'BMP', another name, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    for magic, name in _REFUSED_FORMATS:
        if data.startswith(magic):
            return name
    return None


def decode_base64(s: str) -> DecodedImage:
    if len(s) > MAX_BASE64_CHARS:
        raise failed(
            "ImageSizeExceed",
            f"The base64-encoded image is {len(s)} characters; the limit is {MAX_BASE64_CHARS} (5 MB).",
        )
    text = s.strip()
    if text.startswith("data:") and "," in text[:100]:
        text = text.split(",", 1)[1]  # tolerate a data: URL prefix
    text = "".join(text.split())  # line-wrapped base64 is common
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise failed("ImageDecodeFailed", "The Image field is not valid base64.") from None
    return decode_bytes(data)


def _check_size(fmt: str, width: int, height: int) -> None:
    limit = MAX_LONG_SIDE[fmt]
    if max(width, height) > limit:
        raise failed(
            "ImageResolutionExceed",
            f"The image is {width}x{height} px; the long side may not exceed {limit} px for {fmt} images.",
        )
    if min(width, height) < MIN_SHORT_SIDE:
        raise failed(
            "ImageResolutionTooSmall",
            f"The image is {width}x{height} px; the short side must be at least {MIN_SHORT_SIDE} px.",
        )


def _to_bgr(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    rgb = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def decode_bytes(data: bytes) -> DecodedImage:
    if not data:
        raise failed("ImageDecodeFailed", "The image data is empty.")
    fmt = sniff_format(data)
    if fmt not in MAX_LONG_SIDE:
        if fmt is None:
            raise failed("ImageDecodeFailed", "The data is not a PNG, JPEG or BMP image.")
        raise failed(
            "ImageDecodeFailed", f"{fmt} images are not supported; send a PNG, JPEG or BMP image."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=[fmt])  # header only; no pixels yet
    except Image.DecompressionBombError:
        raise failed("ImageResolutionExceed", "The image declares an excessively large resolution.") from None
    except Exception:
        raise failed("ImageDecodeFailed", f"The {fmt} image header could not be read.") from None
    width, height = im.size
    _check_size(fmt, width, height)
    if fmt == "JPEG" and im.mode in ("RGB", "L") and _ends_with_eoi(data):
        return _lazy_jpeg(data, im)
    return DecodedImage(pixels=_decode_pil(im, fmt), format=fmt)


def _decode_pil(im: Image.Image, fmt: str) -> np.ndarray:
    try:
        im.load()
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception:  # a broken EXIF block should not sink an otherwise good image
            pass
        return _to_bgr(im)
    except ApiError:
        raise
    except Exception as exc:
        raise failed("ImageDecodeFailed", f"The {fmt} image data is corrupt or truncated ({exc}).") from None


# --------------------------------------------------------------------------- JPEG on demand
# A JPEG decodes through OpenCV's libjpeg-turbo (the same pixels as Pillow's, without Pillow's
# RGB->BGR copy), lazily: detection asks for a reduced decode (DCT scaling), and the full
# picture is decoded only when a face is aligned or measured. Only RGB or grey files that end
# with an EOI marker take this path: a file cut short would decode with a grey bottom here
# where Pillow refuses it, and CMYK/YCCK files convert differently, so those keep Pillow's
# eager path (which also gives the documented error for anything broken).

_EXIF_ORIENTATION = 0x0112
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _ends_with_eoi(data: bytes) -> bool:
    return data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation Pillow's ``exif_transpose`` would apply (1 if none or unreadable)."""
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1
    return value if 2 <= value <= 8 else 1


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` turned as Pillow's ``exif_transpose`` turns an image with that orientation."""
    if orientation == 2:
        out = pixels[:, ::-1]
    elif orientation == 3:
        out = pixels[::-1, ::-1]
    elif orientation == 4:
        out = pixels[::-1]
    elif orientation == 5:
        out = pixels.transpose(1, 0, 2)
    elif orientation == 6:
        out = cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    elif orientation == 7:
        out = pixels[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        out = cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    else:
        return pixels
    return np.ascontiguousarray(out)


def _lazy_jpeg(data: bytes, im: Image.Image) -> DecodedImage:
    orientation = _orientation(im)
    width, height = im.size
    size = (height, width) if orientation >= 5 else (width, height)

    def decode(reduction: int) -> np.ndarray:
        with timing.stage("decode"):
            flags = _REDUCED_FLAGS[reduction] | cv2.IMREAD_IGNORE_ORIENTATION
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
            expected = (-(-height // reduction), -(-width // reduction))
            if pixels is None or pixels.ndim != 3 or pixels.shape[:2] != expected:
                if reduction == 1:  # Pillow decides, and names the error
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return _decode_pil(Image.open(io.BytesIO(data), formats=["JPEG"]), "JPEG")
                raise failed("ImageDecodeFailed", "The JPEG image data is corrupt or truncated.")
            return orient(pixels, orientation)

    return DecodedImage(format="JPEG", size=size, decoder=decode)


# --------------------------------------------------------------------------- Url fetching


def _refused_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


def _parse_url(url: str):
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise value("UrlIllegal", "The Url is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise value("UrlIllegal", "The Url must start with http:// or https://.")
    if not parts.hostname:
        raise value("UrlIllegal", "The Url has no host name.")
    return parts, port or (443 if parts.scheme.lower() == "https" else 80)


def _resolve(host: str, port: int, allow_private: bool) -> str:
    """One address for `host`, refusing internal ones (SSRF) unless the operator allows them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise failed("ImageDownloadError", f"The Url host {host!r} could not be resolved.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise failed("ImageDownloadError", f"The Url host {host!r} could not be resolved.")
    if not allow_private:
        bad = [a for a in addresses if _refused_address(a)]
        if bad:
            raise failed(
                "ImageDownloadError",
                f"The Url host {host!r} resolves to a private or reserved address ({bad[0]}); "
                "fetching from internal networks is not allowed.",
            )
    return str(addresses[0])


def fetch_url(url: str, *, allow_private_urls: bool = False) -> bytes:
    """Download an image, pinning each hop to the address we checked (no DNS rebinding)."""
    import httpx

    timeout = httpx.Timeout(URL_READ_TIMEOUT_S, connect=URL_CONNECT_TIMEOUT_S)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(URL_MAX_REDIRECTS + 1):
            parts, port = _parse_url(url)
            host = parts.hostname
            ip = _resolve(host, port, allow_private_urls)
            netloc_ip = f"[{ip}]" if ":" in ip else ip
            target = parts._replace(netloc=f"{netloc_ip}:{port}").geturl()
            bracketed = f"[{host}]" if ":" in host else host
            host_header = bracketed if parts.port is None else f"{bracketed}:{parts.port}"
            try:
                with client.stream(
                    "GET", target, headers={"Host": host_header, "Accept": "image/*"},
                    extensions={"sni_hostname": host},
                ) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])  # re-checked next hop
                        continue
                    if resp.status_code != 200:
                        raise failed(
                            "ImageDownloadError", f"Downloading the Url returned HTTP {resp.status_code}."
                        )
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > MAX_IMAGE_BYTES:
                        raise _too_big()
                    body = bytearray()
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > MAX_IMAGE_BYTES:
                            raise _too_big()
                    return bytes(body)
            except ApiError:
                raise
            except httpx.TimeoutException:
                raise failed("ImageDownloadError", "Downloading the Url timed out.") from None
            except (httpx.HTTPError, OSError) as exc:
                raise failed("ImageDownloadError", f"Downloading the Url failed: {type(exc).__name__}.") from None
        raise failed("ImageDownloadError", f"The Url redirected more than {URL_MAX_REDIRECTS} times.")


def _too_big() -> ApiError:
    return failed("ImageSizeExceed", "The image at the Url exceeds 5 MB once base64-encoded.")


def load_image(image_b64: str | None, url: str | None, *, allow_private_urls: bool = False) -> DecodedImage:
    """The request's image: Url wins when both are given (as the IAI docs specify).

    Timed as the "decode" stage (a Url's download included)."""
    with timing.stage("decode"):
        if url:
            return decode_bytes(fetch_url(url, allow_private_urls=allow_private_urls))
        if image_b64:
            return decode_base64(image_b64)
        raise value("ImageEmpty", "Either Image (base64) or Url must be provided.")
