"""Reference outputs of `resize: tf1` (crates/dalab-data/src/formats/images.rs, ResizeGrid::Tf1), from TensorFlow.

Run: python3 make_resize_reference.py > resize_tf1_reference.json   (tensorflow-cpu, NumPy; checked in
crates/dalab-data/src/formats/images.rs, test `tf1_grid_matches_tensorflow`).

TensorFlow 1.0's tf.image.resize_images (the ADDA code's, requirements.txt: tensorflow_gpu==1.0.0) is bilinear with
align_corners=False on the grid that TensorFlow 2 keeps as tf.compat.v1.image.resize_bilinear(...,
align_corners=False, half_pixel_centers=False). The test planes are formulas, regenerated identically in the test:
plane (y, x) = ((5 x^2 + 3 y + (x y) mod 7) mod 256) / 255 at h x w, resized to each (oh, ow) below: the resizes
of the ADDA protocols (USPS 16 -> 28 in the final code; USPS 16 -> 32 and MNIST 28 -> 32 in the early one) and a
shrink with unequal axes.
"""
import json

import numpy as np
import tensorflow as tf


def plane(h, w):
    y = np.arange(h)[:, None]
    x = np.arange(w)[None, :]
    return (((5 * x * x + 3 * y + (x * y) % 7) % 256) / 255.0).astype(np.float32)


out = {"tensorflow": tf.__version__, "cases": []}
for h, w, oh, ow in [(16, 16, 28, 28), (16, 16, 32, 32), (28, 28, 32, 32), (9, 13, 4, 6)]:
    img = plane(h, w)[None, :, :, None]
    r = tf.compat.v1.image.resize_bilinear(img, [oh, ow], align_corners=False, half_pixel_centers=False)
    out["cases"].append(
        {"h": h, "w": w, "oh": oh, "ow": ow, "values": [float(v) for v in np.asarray(r).reshape(-1)]}
    )
print(json.dumps(out))
