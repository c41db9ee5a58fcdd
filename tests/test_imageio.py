import numpy as np
from PIL import Image

from medprobe.imageio import load_rgb, to_rgb


def test_gray_is_replicated():
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    rgb = np.asarray(to_rgb(gray))
    assert rgb.shape == (16, 16, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == np.asarray(gray)).all()


def test_16_bit_is_rescaled_from_its_own_range(tmp_path):
    values = np.linspace(1000, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit image in 16 bits
    path = tmp_path / "ct.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_rgb(path))
    assert rgb.dtype == np.uint8 and rgb.min() == 0 and rgb.max() == 255
    assert rgb[0, 0, 0] < rgb[32, 32, 0] < rgb[-1, -1, 0]


def test_constant_16_bit_image_becomes_black():
    flat = Image.fromarray(np.full((8, 8), 700, dtype=np.uint16))
    assert np.asarray(to_rgb(flat)).max() == 0


def test_alpha_is_composited_over_black():
    rgba = Image.new("RGBA", (4, 4), (200, 100, 50, 0))
    assert np.asarray(to_rgb(rgba)).max() == 0
    opaque = Image.new("RGBA", (4, 4), (200, 100, 50, 255))
    assert tuple(np.asarray(to_rgb(opaque))[0, 0]) == (200, 100, 50)


def test_cmyk_and_palette_become_rgb():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    assert to_rgb(cmyk).mode == "RGB" and tuple(np.asarray(to_rgb(cmyk))[0, 0]) == (255, 0, 0)
    palette = Image.new("RGB", (4, 4), (10, 200, 30)).convert("P")
    assert to_rgb(palette).mode == "RGB"


# --- DICOM ------------------------------------------------------------------------------------------------------------

def write_dicom(path, pixels, photometric="MONOCHROME2", bits_stored=None):
    """A real DICOM Part 10 file (preamble + DICM, explicit VR little endian), 16-bit unsigned gray by default."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    pixels = np.asarray(pixels)
    bits = 8 if pixels.dtype == np.uint8 else 16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID = "anon"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_16_bit_dicom_is_rescaled_as_the_dlilp_authors_do(tmp_path):
    values = np.linspace(1000, 4000, 48 * 64).reshape(48, 64).astype(np.uint16)  # 12 bits stored in 16
    path = write_dicom(tmp_path / "image.dcm", values, bits_stored=12)
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    expected = np.round((values - 1000.0) / (3000.0 / 255.0)).astype(np.uint8)
    assert (rgb[..., 0] == expected).all() and (rgb[..., 2] == expected).all()


def test_dicom_within_0_255_is_not_rescaled_and_monochrome1_is_inverted(tmp_path):
    values = np.tile(np.arange(10, 74, dtype=np.uint16), (8, 1))  # max <= 255: kept as it is
    plain = np.asarray(load_rgb(write_dicom(tmp_path / "m2.dcm", values)))[..., 0]
    assert (plain == values).all()
    inverted = np.asarray(load_rgb(write_dicom(tmp_path / "m1.dcm", values, photometric="MONOCHROME1")))[..., 0]
    assert (inverted == 255 - values).all()


def test_dicom_is_recognised_by_its_magic_not_its_suffix(tmp_path):
    from medprobe.imageio import decode, is_dicom, read_source, rgb_from_source

    values = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 100
    path = write_dicom(tmp_path / "no_suffix_image", values)
    data = path.read_bytes()
    assert is_dicom(data) and not is_dicom(b"\x89PNG\r\n\x1a\n" + bytes(200))
    image = decode(data)
    assert image.format == "DICOM" and image.size == (16, 16) and image.info["photometric"] == "MONOCHROME2"
    digest, content = read_source(path)
    assert np.array_equal(np.asarray(rgb_from_source(content)), np.asarray(load_rgb(path)))


def test_the_manifest_reports_dicom_format_and_size(tmp_path):
    from medprobe.manifest import inspect_file

    path = write_dicom(tmp_path / "x.dicom", np.full((20, 30), 3000, dtype=np.uint16), photometric="MONOCHROME1")
    facts = inspect_file(path)
    assert (facts.width, facts.height, facts.mode) == (30, 20, "DICOM MONOCHROME1")
