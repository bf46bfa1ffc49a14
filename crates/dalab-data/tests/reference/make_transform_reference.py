"""Reference outputs of the image transforms (crates/dalab-data/src/transforms.rs), from Pillow.

Run: python3 make_transform_reference.py > transform_reference.json   (Pillow, NumPy; checked in
crates/dalab-data/src/transforms.rs, test `matches_pillow`). The test image is a formula, regenerated identically
there: pixel (x, y), channel c = (3 x^2 + 11 y + 70 c + (x y) mod 17) mod 256, 37 wide, 29 high, RGB.

What each entry is (torchvision's PIL path does the same calls):
- resize_*: Image.resize((w, h), filter)              (TLlib's ResizeImage calls resize((256, 256)): bicubic)
- crop_resize: img.crop((5, 3, 25, 18)).resize((11, 9), BILINEAR)   (F.resized_crop on a PIL image)
- grey, grey_resize: img.convert("L") and its bilinear resize to 16x12
- brightness/contrast/saturation: ImageEnhance.Brightness/Contrast/Color(img).enhance(f)  (F.adjust_*)
- hue: torchvision's adjust_hue on PIL: the H band of convert("HSV") plus uint8(f * 255), wrapping, back to RGB
"""
import json
import sys

import numpy as np
import PIL
from PIL import Image, ImageEnhance

W, H = 37, 29


def test_image():
    x = np.arange(W)[None, :, None]
    y = np.arange(H)[:, None, None]
    c = np.arange(3)[None, None, :]
    v = (3 * x * x + 11 * y + 70 * c + (x * y) % 17) % 256
    return Image.fromarray(v.astype(np.uint8), "RGB")


def flat(img):
    return [int(v) for v in np.asarray(img).reshape(-1)]


img = test_image()
out = {"pillow": PIL.__version__, "width": W, "height": H}
for name, size, f in [
    ("resize_down_bilinear", (16, 12), Image.BILINEAR),
    ("resize_down_bicubic", (16, 12), Image.BICUBIC),
    ("resize_up_bilinear", (50, 41), Image.BILINEAR),
    ("resize_up_bicubic", (50, 41), Image.BICUBIC),
]:
    out[name] = {"size": [size[1], size[0]], "data": flat(img.resize(size, f))}
out["crop_resize"] = {"box": [3, 5, 15, 20], "size": [9, 11], "data": flat(img.crop((5, 3, 25, 18)).resize((11, 9), Image.BILINEAR))}
grey = img.convert("L")
out["grey"] = flat(grey)
out["grey_resize"] = {"size": [12, 16], "data": flat(grey.resize((16, 12), Image.BILINEAR))}
out["brightness"] = {"factor": 1.3, "data": flat(ImageEnhance.Brightness(img).enhance(1.3))}
out["contrast"] = {"factor": 0.6, "data": flat(ImageEnhance.Contrast(img).enhance(0.6))}
out["saturation"] = {"factor": 0.4, "data": flat(ImageEnhance.Color(img).enhance(0.4))}
h, s, v = img.convert("HSV").split()
shift = 0.2
with np.errstate(over="ignore"):
    nh = np.array(h, dtype=np.uint8) + np.uint8(shift * 255)
hue = Image.merge("HSV", (Image.fromarray(nh, "L"), s, v)).convert("RGB")
out["hue"] = {"shift": shift, "data": flat(hue)}
json.dump(out, sys.stdout)
sys.stdout.write("\n")
