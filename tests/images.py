"""Small image files made on the fly for import tests."""
import io
import zipfile

from PIL import Image


def image_bytes(index: int = 0, size=(32, 24), image_format: str = "JPEG") -> bytes:
    """Return a small image whose content differs with index."""
    image = Image.new("L", size, color=64 + (index * 37) % 128)
    for bit in range(16):  # the index in 4x4 blocks, black or white: survives JPEG quantisation
        column, row = 4 * (bit % 8), 4 * (bit // 8)
        image.paste(255 if index >> bit & 1 else 0, (column, row, column + 4, row + 4))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """Return a zip archive holding entries {name: bytes}, names written as given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def write_images(folder, count: int, start: int = 0, prefix: str = "img") -> list[str]:
    """Write count distinct JPEGs into folder; return their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(start, start + count):
        name = f"{prefix}_{index:03d}.jpg"
        (folder / name).write_bytes(image_bytes(index))
        names.append(name)
    return names
