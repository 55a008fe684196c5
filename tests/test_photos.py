"""fastadv.photos on real files made here with Pillow (and OpenCV where Pillow cannot write the
file): depth, orientation, metadata, alpha, modes, formats and the working resolution."""

import struct

import cv2
import numpy as np
import pytest
import torch
from _models import classifier
from PIL import ExifTags, Image, ImageCms, ImageOps
from skimage import data

from fastadv.attacks import color_variance_attack, ifgsm
from fastadv.photos import (
    DEFAULT_MAX_SIDE,
    GreyscaleModel,
    PhotoError,
    free_path,
    output_warning,
    photo_model,
    read_photo,
    working_copy,
    working_size,
    write_photo,
)
from fastadv.photos._png16 import encode_png16

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE, DATE_TAKEN = ExifTags.Base.Make, ExifTags.Base.DateTimeOriginal


def samples(shape, dtype=np.uint8, seed=0):
    """Random samples over the dtype's whole range."""
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype, True)


def exif_block(orientation=None, **ifd):
    """An EXIF block with a Make, a DateTimeOriginal in the Exif IFD, `ifd`'s tags added there,
    and the orientation when given."""
    exif = Image.Exif()
    exif[MAKE] = "fastadv test camera"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[DATE_TAKEN] = "2024:05:01 12:00:00"
    sub.update({getattr(ExifTags.Base, name): value for name, value in ifd.items()})
    return exif.tobytes()


def as_levels(photo):
    """The photo's pixels as its integer samples [H, W, C]."""
    levels = photo.pixels.mul(photo.levels).round().numpy().astype(np.int64)
    return levels.transpose(1, 2, 0)


def unchanged(tmp_path, photo, name="out.png"):
    """Writes the photo as read and returns the path."""
    return write_photo(tmp_path / name, photo, photo.pixels).path


# --- depth ---------------------------------------------------------------------------------


def test_16bit_grey_png_is_read_at_its_depth_and_round_trips(tmp_path):
    values = samples((24, 40), np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    Image.fromarray(values).save(tmp_path / "grey16.png")

    photo = read_photo(tmp_path / "grey16.png")
    assert (photo.mode, photo.bit_depth, photo.channels, photo.alpha) == ("I;16", 16, 1, None)
    np.testing.assert_array_equal(as_levels(photo)[..., 0], values)  # not all white

    with Image.open(unchanged(tmp_path, photo)) as out:
        assert out.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(out), values)


@pytest.mark.parametrize("channels", [3, 4], ids=["RGB", "RGBA"])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_is_read_at_its_depth_and_round_trips(tmp_path, channels, suffix):
    bgr = samples((20, 30, channels), np.uint16, seed=channels)
    cv2.imwrite(str(tmp_path / f"in{suffix}"), bgr)  # Pillow writes no 16-bit colour
    rgb = bgr[..., [2, 1, 0, 3][:channels]]

    photo = read_photo(tmp_path / f"in{suffix}")
    assert (photo.mode, photo.bit_depth, photo.channels) == (f"{'RGBA'[:channels]};16", 16, 3)
    np.testing.assert_array_equal(as_levels(photo), rgb[..., :3])
    if channels == 4:
        assert photo.alpha.dtype == torch.uint16
        np.testing.assert_array_equal(photo.alpha.numpy(), rgb[..., 3])

    out = cv2.imread(str(unchanged(tmp_path, photo)), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, bgr)


def test_16bit_png_keeps_the_icc_profile_and_exif(tmp_path):
    cv2.imwrite(str(tmp_path / "in.png"), samples((8, 12, 3), np.uint16))
    photo = read_photo(tmp_path / "in.png")
    photo.icc_profile, photo.exif = SRGB, exif_block()

    with Image.open(unchanged(tmp_path, photo)) as out:
        assert out.info["icc_profile"] == SRGB
        assert out.getexif()[MAKE] == "fastadv test camera"
        assert out.getexif().get_ifd(ExifTags.IFD.Exif)[DATE_TAKEN] == "2024:05:01 12:00:00"


def test_16bit_grey_with_alpha_round_trips(tmp_path):
    grey_alpha = samples((10, 14, 2), np.uint16, seed=3)
    (tmp_path / "in.png").write_bytes(encode_png16(grey_alpha, None, None))
    with Image.open(tmp_path / "in.png") as image:
        assert image.mode == "RGBA"  # what Pillow makes of it, at 8 bits

    photo = read_photo(tmp_path / "in.png")
    assert (photo.mode, photo.bit_depth, photo.channels) == ("LA;16", 16, 1)
    np.testing.assert_array_equal(as_levels(photo)[..., 0], grey_alpha[..., 0])
    np.testing.assert_array_equal(photo.alpha.numpy(), grey_alpha[..., 1])
    again = read_photo(unchanged(tmp_path, photo))
    torch.testing.assert_close(again.pixels, photo.pixels, rtol=0, atol=0)
    assert torch.equal(again.alpha, photo.alpha)


# --- orientation and metadata --------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    Image.fromarray(samples((6, 10, 3))).save(tmp_path / "in.png", exif=exif_block(orientation))
    with Image.open(tmp_path / "in.png") as image:
        upright = np.asarray(ImageOps.exif_transpose(image))

    photo = read_photo(tmp_path / "in.png")
    np.testing.assert_array_equal(as_levels(photo), upright)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_orientation_applied_and_removed_other_exif_kept(tmp_path, orientation):
    path = tmp_path / "in.jpg"
    exif = exif_block(orientation, ExifImageWidth=64, ExifImageHeight=48)
    Image.fromarray(data.astronaut()[::8, ::8][:48]).save(path, exif=exif, quality=90)
    with Image.open(path) as image:
        upright = np.asarray(ImageOps.exif_transpose(image))

    photo = read_photo(path)
    assert photo.size == upright.shape[:2] == ((64, 48) if orientation != 3 else (48, 64))
    np.testing.assert_array_equal(as_levels(photo), upright)

    with Image.open(unchanged(tmp_path, photo)) as out:
        assert out.size == upright.shape[1::-1]
        exif = out.getexif()
        assert ExifTags.Base.Orientation not in exif
        assert exif[MAKE] == "fastadv test camera"
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        assert sub[DATE_TAKEN] == "2024:05:01 12:00:00"
        assert (sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight]) == out.size


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_icc_profile_is_kept(tmp_path, suffix):
    Image.fromarray(data.coffee()[::16, ::16]).save(tmp_path / f"in{suffix}", icc_profile=SRGB)
    photo = read_photo(tmp_path / f"in{suffix}")
    assert photo.icc_profile == SRGB
    for out_suffix in (".png", ".jpg"):
        with Image.open(unchanged(tmp_path, photo, f"out{out_suffix}")) as out:
            assert out.info["icc_profile"] == SRGB


def raw_exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """An EXIF block by hand (Pillow writes no IFD1): IFD0 with a Make, then IFD1 holding a
    JPEG thumbnail, as cameras write them."""
    make = b"cam\0"
    ifd0_at, ifd1_at = 8, 8 + 2 + 12 + 4
    thumb_at = ifd1_at + 2 + 2 * 12 + 4
    head = b"MM\0*" + struct.pack(">I", ifd0_at)
    ifd0 = struct.pack(">HHHI4sI", 1, MAKE, 2, len(make), make, ifd1_at)
    ifd1 = struct.pack(">HHHIIHHII", 2, 0x201, 4, 1, thumb_at, 0x202, 4, 1, len(thumbnail))
    return b"Exif\0\0" + head + ifd0 + ifd1 + struct.pack(">I", 0) + thumbnail


def test_exif_thumbnail_maker_note_and_tiff_layout_are_not_carried(tmp_path):
    thumb = tmp_path / "thumb.jpg"
    Image.fromarray(data.astronaut()[::32, ::32]).save(thumb)
    Image.fromarray(data.astronaut()[::16, ::16]).save(
        tmp_path / "in.jpg", exif=raw_exif_with_thumbnail(thumb.read_bytes())
    )
    with Image.open(tmp_path / "in.jpg") as image:  # the input does hold it
        assert image.getexif().get_ifd(ExifTags.IFD.IFD1)
    with Image.open(unchanged(tmp_path, read_photo(tmp_path / "in.jpg"))) as out:
        assert out.getexif()[MAKE] == "cam"
        assert not out.getexif().get_ifd(ExifTags.IFD.IFD1)
    assert thumb.read_bytes()[16:-16] not in (tmp_path / "out.png").read_bytes()

    exif = exif_block(MakerNote=b"vendor preview")
    Image.fromarray(samples((4, 6, 3))).save(tmp_path / "in.tif", exif=exif)
    with Image.open(unchanged(tmp_path, read_photo(tmp_path / "in.tif"), "tif.png")) as out:
        tags = out.getexif()
        assert tags[MAKE] == "fastadv test camera"
        assert ExifTags.Base.MakerNote not in tags.get_ifd(ExifTags.IFD.Exif)
        assert not {ExifTags.Base.StripOffsets, ExifTags.Base.BitsPerSample} & set(tags)


# --- alpha and modes -----------------------------------------------------------------------


def perturbed(photo, seed=0, quanta=2):
    """The photo's pixels moved by up to `quanta` grid steps, and the samples that holds."""
    noise = torch.randint(-quanta, quanta + 1, photo.pixels.shape, generator=torch.Generator())
    levels = (as_levels(photo).transpose(2, 0, 1) + noise.numpy()).clip(0, photo.levels)
    return torch.from_numpy(levels / photo.levels).float(), levels.transpose(1, 2, 0)


def test_rgba_keeps_its_alpha_untouched(tmp_path):
    rgba = samples((16, 64, 4))
    rgba[..., 3] = np.arange(64, dtype=np.uint8)[None] * 4  # an alpha gradient
    Image.fromarray(rgba).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    assert (photo.channels, photo.alpha.dtype) == (3, torch.uint8)

    pixels, expected = perturbed(photo)
    with Image.open(write_photo(tmp_path / "out.png", photo, pixels).path) as out:
        assert out.mode == "RGBA"
        written = np.asarray(out)
    np.testing.assert_array_equal(written[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(written[..., :3], expected)


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_greyscale_stays_greyscale(tmp_path, mode):
    grey = samples((12, 20, len(mode)))
    Image.fromarray(grey[..., 0] if mode == "L" else grey).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    assert photo.channels == 1 and (photo.alpha is None) == (mode == "L")

    pixels, expected = perturbed(photo)
    with Image.open(write_photo(tmp_path / "out.png", photo, pixels).path) as out:
        assert out.mode == mode
        written = np.asarray(out).reshape(12, 20, -1)
    np.testing.assert_array_equal(written[..., :1], expected)
    if mode == "LA":
        np.testing.assert_array_equal(written[..., 1], grey[..., 1])


def test_greyscale_attack_sees_and_writes_one_grey_image(tmp_path):
    Image.fromarray(data.camera()[::16, ::16]).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    work = working_copy(photo)
    x = work.model_input()
    assert x.shape == (1, 3, 32, 32) and torch.equal(x[0, 0], x[0, 2])
    model = classifier(seed=1)
    wrapped = photo_model(model, photo)
    assert isinstance(wrapped, GreyscaleModel)

    eps = 4 / 255
    sign = ifgsm(wrapped, x, eps=eps, steps=4)
    assert torch.equal(sign.adv[0, 0], sign.adv[0, 1])  # sign steps move the channels alike
    protect = color_variance_attack(wrapped, x, steps=5)
    for adv, bound in ((sign.adv, eps), (protect.adv, protect.threshold.max().item())):
        grey = work.full_size(adv[0])
        assert grey.shape == (1, 32, 32)
        assert (grey - photo.pixels).abs().max() <= bound + 1e-6
        with torch.no_grad():  # the model's verdict is on the grey image written
            torch.testing.assert_close(wrapped(adv), model(grey.expand(3, -1, -1)[None]))
    with Image.open(write_photo(tmp_path / "out.png", photo, grey).path) as out:
        assert out.mode == "L"


@pytest.mark.parametrize("transparency", [False, True])
def test_palette_is_read_as_colour(tmp_path, transparency):
    palette = Image.fromarray(data.coffee()[::16, ::16]).quantize(16)
    palette.save(tmp_path / "in.png", **({"transparency": 3} if transparency else {}))
    with Image.open(tmp_path / "in.png") as image:
        expected = np.asarray(image.convert("RGBA" if transparency else "RGB"))

    photo = read_photo(tmp_path / "in.png")
    assert photo.mode == "P" and photo.channels == 3
    np.testing.assert_array_equal(as_levels(photo), expected[..., :3])
    with Image.open(unchanged(tmp_path, photo)) as out:
        assert out.mode == ("RGBA" if transparency else "RGB")
        np.testing.assert_array_equal(np.asarray(out), expected)


def test_bilevel_is_read_as_greyscale(tmp_path):
    Image.fromarray(samples((8, 8)) > 127).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    assert (photo.mode, photo.channels, photo.bit_depth) == ("1", 1, 8)
    assert set(as_levels(photo).ravel().tolist()) == {0, 255}


def refusal(path) -> str:
    with pytest.raises(PhotoError) as caught:
        read_photo(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_unsupported_modes_are_refused_in_one_line(tmp_path):
    Image.new("CMYK", (8, 8), (0, 50, 100, 0)).save(tmp_path / "cmyk.jpg")
    assert "CMYK" in refusal(tmp_path / "cmyk.jpg")
    Image.new("F", (8, 8), 0.5).save(tmp_path / "float.tif")
    assert "32-bit float" in refusal(tmp_path / "float.tif")
    Image.new("I", (8, 8), 70000).save(tmp_path / "int.tif")
    assert "32-bit integer" in refusal(tmp_path / "int.tif")
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert "2 frames" in refusal(tmp_path / "anim.gif")


def test_unreadable_files_are_refused_in_one_line(tmp_path):
    assert "no such file" in refusal(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    assert "not an image" in refusal(tmp_path / "notes.png")
    Image.fromarray(samples((64, 64, 3))).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:4000])
    assert "cannot read it" in refusal(tmp_path / "cut.png")


# --- output formats and never overwriting --------------------------------------------------


def test_output_formats_are_checked_and_flagged(tmp_path):
    Image.fromarray(data.coffee()[::16, ::16]).save(tmp_path / "rgb.png")
    Image.fromarray(samples((8, 8, 4))).save(tmp_path / "rgba.png")
    Image.fromarray(samples((8, 8), np.uint16)).save(tmp_path / "grey16.png")
    rgb, rgba, grey16 = (read_photo(tmp_path / f"{n}.png") for n in ("rgb", "rgba", "grey16"))

    assert output_warning(tmp_path / "a.png", rgb) is None
    assert output_warning(tmp_path / "a.webp", rgb) is None
    jpeg = output_warning(tmp_path / "a.JPG", rgb)
    assert "8 % of images at quality 95" in jpeg and "29 % at 75" in jpeg and "\n" not in jpeg
    webp = output_warning(tmp_path / "a.webp", grey16)
    assert "8 bits" in webp and "RGB" in webp
    with pytest.raises(PhotoError, match="alpha"):
        output_warning(tmp_path / "a.jpg", rgba)
    with pytest.raises(PhotoError, match=r"\.bmp"):
        write_photo(tmp_path / "a.bmp", rgb, rgb.pixels)
    assert not (tmp_path / "a.bmp").exists()


def test_webp_is_lossless_and_jpeg_keeps_metadata(tmp_path):
    Image.fromarray(data.coffee()[::16, ::16]).save(tmp_path / "in.jpg", exif=exif_block())
    photo = read_photo(tmp_path / "in.jpg")
    pixels, expected = perturbed(photo)
    with Image.open(write_photo(tmp_path / "out.webp", photo, pixels).path) as out:
        np.testing.assert_array_equal(np.asarray(out), expected)
        assert out.getexif()[MAKE] == "fastadv test camera"
    written = write_photo(tmp_path / "out.jpg", photo, pixels)
    assert (written.format, written.bit_depth, written.size) == ("JPEG", 8, photo.size)
    with Image.open(written.path) as out:
        assert out.getexif()[MAKE] == "fastadv test camera"


def test_never_writes_over_a_file_or_the_input(tmp_path):
    Image.fromarray(samples((8, 8, 3))).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    before = (tmp_path / "in.png").read_bytes()
    with pytest.raises(PhotoError, match="input"):
        write_photo(tmp_path / "in.png", photo, photo.pixels.flip(1))
    (tmp_path / "taken.png").write_bytes(b"keep me")
    with pytest.raises(PhotoError, match="exists"):
        write_photo(tmp_path / "taken.png", photo, photo.pixels)
    assert (tmp_path / "in.png").read_bytes() == before
    assert (tmp_path / "taken.png").read_bytes() == b"keep me"
    assert free_path(tmp_path / "taken.png") == tmp_path / "taken-1.png"
    assert free_path(tmp_path / "new.png", {(tmp_path / "new.png").resolve()}).name == "new-1.png"
    with pytest.raises(ValueError, match=r"\[3, 8, 8\]"):
        write_photo(tmp_path / "small.png", photo, photo.pixels[:, :4])


# --- working resolution --------------------------------------------------------------------


def test_working_size():
    assert working_size((4000, 6000), DEFAULT_MAX_SIDE) == (683, 1024)
    assert working_size((400, 600), 200) == (133, 200)
    assert working_size((300, 20), 100) == (100, 7)
    assert working_size((300, 200), 300) == (300, 200)
    assert working_size((9000, 3), None) == (9000, 3)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_side"):
            working_size((10, 10), bad)


@pytest.mark.parametrize(
    ("image", "depth"),
    [(data.coffee, 8), (data.astronaut, 8), (data.camera, 16)],
    ids=["coffee", "astronaut", "camera-16bit"],
)
def test_large_photo_runs_small_and_is_written_at_full_size(tmp_path, image, depth):
    content = 26 + 0.8 * image()  # within [0.1, 0.9]: no clamp at either size
    values = (content * 257).astype(np.uint16) if depth == 16 else content.astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    work = working_copy(photo, max_side=200)
    assert work.scaled and max(work.size) == 200
    assert work.size[0] / work.size[1] == pytest.approx(photo.size[0] / photo.size[1], rel=0.01)

    signs = torch.randint(-3, 4, work.pixels.shape, generator=torch.Generator().manual_seed(0))
    adv = work.pixels + signs / 255  # a perturbation on the 8-bit grid
    linf = (adv - work.pixels).abs().max().item()
    written = write_photo(tmp_path / "out.png", photo, work.full_size(adv.expand(3, -1, -1)))
    assert (written.size, written.bit_depth) == (photo.size, depth)

    back = read_photo(written.path)
    assert back.size == photo.size and back.bit_depth == depth
    change = (back.pixels - photo.pixels).abs().max().item()
    assert 0 < change <= linf + 0.5 / photo.levels + 1e-6
    # Downscaled again, the file gives back what was attacked, up to its rounding.
    again = working_copy(back, max_side=200).pixels
    assert (again - adv).abs().max() <= 0.5 / photo.levels + 1e-6


def test_working_copy_averages_cells_of_whole_pixels(tmp_path):
    Image.fromarray(data.astronaut()).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    halved = working_copy(photo, max_side=256).pixels  # cells of 2x2 pixels
    torch.testing.assert_close(halved, torch.nn.functional.avg_pool2d(photo.pixels, 2))

    work = working_copy(photo, max_side=200)  # 512 -> 200: cells of 2 or 3 rows and columns
    edges = [0, *(i for i in range(1, 512) if i * 200 // 512 != (i - 1) * 200 // 512), 512]
    assert set(np.diff(edges).tolist()) == {2, 3} and len(edges) == 201
    cell = photo.pixels[:, edges[7] : edges[8], edges[150] : edges[151]]
    torch.testing.assert_close(work.pixels[:, 7, 150], cell.mean((1, 2)))


def test_a_photo_that_fits_is_attacked_as_it_is(tmp_path):
    Image.fromarray(data.astronaut()[:100, :150]).save(tmp_path / "in.png")
    photo = read_photo(tmp_path / "in.png")
    work = working_copy(photo, max_side=150)
    assert not work.scaled and work.pixels is photo.pixels and work.size == (100, 150)
    adv = (work.pixels + 2 / 255).clamp(0, 1)
    assert torch.equal(work.full_size(adv), adv)
