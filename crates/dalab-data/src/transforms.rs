//! Image transforms of training and evaluation, as torchvision applies them to PIL images and TLlib composes them
//! (`train_transform:` / `eval_transform:` of an `image-folders` dataset):
//!
//! ```yaml
//! dataset:
//!   name: image-folders
//!   train_transform: office31            # TLlib's default: resize 256×256 → random resized crop 224 → flip
//!   eval_transform: office31             # resize 256×256 → centre crop 224
//!   # or the steps themselves:
//!   # train_transform:
//!   #   - resize: {size: [256, 256], interpolation: bicubic}
//!   #   - random_resized_crop: {size: 224, scale: [0.08, 1.0], ratio: [0.75, 1.3333333]}
//!   #   - horizontal_flip: 0.5
//!   #   - color_jitter: {brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1}
//! ```
//!
//! Every step works on 8-bit images, as PIL does (rounded after each step); then pixel/255 and the `image:` mean/std
//! normalisation (ImageNet's by default). Resampling is `fast_image_resize`'s convolution (Pillow's algorithm:
//! separable, antialiased when shrinking; bilinear = triangle filter, bicubic = Catmull-Rom, a = −0.5). The random
//! parameters follow torchvision's rules (`RandomResizedCrop.get_params`, `RandomCrop`, `ColorJitter` with its
//! random order) with our own seeded ChaCha8 stream per drawn sample — the same distribution as torchvision, not
//! its random numbers. The crate has no image transforms of this kind (the resampler is a crate), so the steps are
//! ours.

use crate::formats::images::Image;
use fast_image_resize as fr;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize, de};

/// A size: one number (a square, or the shorter side for `resize`) or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Size {
    One(usize),
    Hw([usize; 2]),
}

impl Size {
    fn hw(self) -> [usize; 2] {
        match self {
            Size::One(s) => [s, s],
            Size::Hw(hw) => hw,
        }
    }
}

/// The resampling filter of a resize.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Nearest,
    /// torchvision's default for `Resize` and `RandomResizedCrop`.
    #[default]
    Bilinear,
    /// PIL's default for `Image.resize` (what TLlib's `ResizeImage` calls).
    Bicubic,
}

impl Interpolation {
    fn is_default(&self) -> bool {
        *self == Interpolation::Bilinear
    }

    fn alg(self) -> fr::ResizeAlg {
        match self {
            Interpolation::Nearest => fr::ResizeAlg::Nearest,
            Interpolation::Bilinear => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
            Interpolation::Bicubic => fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom),
        }
    }
}

/// `resize: 256` (the shorter side, as torchvision's `Resize(256)`), `resize: [256, 256]` (exactly, as TLlib's
/// `ResizeImage(256)`), or `resize: {size: ..., interpolation: bicubic}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResizeSpec {
    Size(Size),
    Full(ResizeFull),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeFull {
    pub size: Size,
    #[serde(default, skip_serializing_if = "Interpolation::is_default")]
    pub interpolation: Interpolation,
}

/// `random_resized_crop: 224` or `{size, scale, ratio, interpolation}` (torchvision's defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RandomResizedCropSpec {
    Size(Size),
    Full(RandomResizedCrop),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCrop {
    pub size: Size,
    /// Range of the crop's area, as a fraction of the image's.
    #[serde(default = "default_scale")]
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    #[serde(default = "default_ratio")]
    pub ratio: [f64; 2],
    #[serde(default, skip_serializing_if = "Interpolation::is_default")]
    pub interpolation: Interpolation,
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

/// `color_jitter: {brightness, contrast, saturation, hue}`: factors drawn uniformly in `[max(0, 1 − x), 1 + x]`
/// (hue: a shift in `[−x, x]`, x ≤ 0.5), applied in a random order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// One step of a transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Resize(ResizeSpec),
    /// The centre crop (padded with black where the image is smaller, as torchvision).
    CenterCrop(Size),
    /// A crop at a random position (the image must be at least that large).
    RandomCrop(Size),
    RandomResizedCrop(RandomResizedCropSpec),
    /// A left-right flip with this probability.
    HorizontalFlip(f64),
    ColorJitter(ColorJitter),
}

impl Step {
    /// Whether the step draws random numbers.
    pub fn is_random(&self) -> bool {
        matches!(
            self,
            Step::RandomCrop(_) | Step::RandomResizedCrop(_) | Step::HorizontalFlip(_) | Step::ColorJitter(_)
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Step::Resize(_) => "resize",
            Step::CenterCrop(_) => "center_crop",
            Step::RandomCrop(_) => "random_crop",
            Step::RandomResizedCrop(_) => "random_resized_crop",
            Step::HorizontalFlip(_) => "horizontal_flip",
            Step::ColorJitter(_) => "color_jitter",
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = |s: Size| {
            if s.hw().contains(&0) { Err(format!("sizes must be >= 1, got {:?}", s.hw())) } else { Ok(()) }
        };
        let limit = |s: Size| match s.hw().iter().find(|&&v| v > MAX_SIDE) {
            Some(v) => Err(format!("sizes must be <= {MAX_SIDE} (the image-side limit), got {v}")),
            None => Ok(()),
        };
        match self {
            Step::Resize(ResizeSpec::Size(s) | ResizeSpec::Full(ResizeFull { size: s, .. }))
            | Step::CenterCrop(s)
            | Step::RandomCrop(s) => positive(*s).and(limit(*s)),
            Step::RandomResizedCrop(spec) => {
                let c = spec.full();
                positive(c.size).and(limit(c.size))?;
                let [a, b] = c.scale;
                if !(a > 0.0 && a <= b && b <= 1.0) {
                    return Err(format!("scale: want 0 < min <= max <= 1, got [{a}, {b}]"));
                }
                let [r0, r1] = c.ratio;
                if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
                    return Err(format!("ratio: want 0 < min <= max, got [{r0}, {r1}]"));
                }
                Ok(())
            }
            Step::HorizontalFlip(p) if !(0.0..=1.0).contains(p) => Err(format!("a probability in [0, 1], got {p}")),
            Step::HorizontalFlip(_) => Ok(()),
            Step::ColorJitter(j) => {
                for (k, v) in [("brightness", j.brightness), ("contrast", j.contrast), ("saturation", j.saturation)] {
                    if !(v >= 0.0 && v.is_finite()) {
                        return Err(format!("{k}: must be a finite number >= 0, got {v}"));
                    }
                }
                if !(0.0..=0.5).contains(&j.hue) {
                    return Err(format!("hue: must be in [0, 0.5], got {}", j.hue));
                }
                Ok(())
            }
        }
    }
}

/// The largest output side of a resize or crop.
pub const MAX_SIDE: usize = 8192;

impl RandomResizedCropSpec {
    fn full(&self) -> RandomResizedCrop {
        match self {
            RandomResizedCropSpec::Size(s) => RandomResizedCrop {
                size: *s,
                scale: default_scale(),
                ratio: default_ratio(),
                interpolation: Interpolation::Bilinear,
            },
            RandomResizedCropSpec::Full(c) => c.clone(),
        }
    }
}

/// A transform as written: a preset's name or the steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TransformSpec {
    Preset(String),
    Steps(Vec<Step>),
}

/// The specs written either short (a size, a preset's name) or in full (a mapping, a list), read by hand rather
/// than as `#[serde(untagged)]` enums: an untagged enum replaces the error inside the value (an unknown step or
/// field) by "did not match any variant".
trait ShortOrFull: Sized {
    const EXPECTING: &'static str;
    fn from_size(s: Size) -> Option<Self>;
    fn from_map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
    fn from_str<E: de::Error>(_: &str) -> Option<Result<Self, E>> {
        None
    }
    fn from_seq<'de, A: de::SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let hw: [usize; 2] = Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Self::from_size(Size::Hw(hw)).ok_or_else(|| de::Error::invalid_type(de::Unexpected::Seq, &Self::EXPECTING))
    }
}

struct ShortOrFullVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: ShortOrFull> de::Visitor<'de> for ShortOrFullVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        let v = usize::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))?;
        T::from_size(Size::One(v)).ok_or_else(|| E::invalid_type(de::Unexpected::Unsigned(v as u64), &self))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_str(v).unwrap_or_else(|| Err(E::invalid_type(de::Unexpected::Str(v), &self)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

fn map_into<'de, F: Deserialize<'de>, A: de::MapAccess<'de>>(map: A) -> Result<F, A::Error> {
    F::deserialize(de::value::MapAccessDeserializer::new(map))
}

impl ShortOrFull for Size {
    const EXPECTING: &'static str = "a size: one integer or [height, width]";
    fn from_size(s: Size) -> Option<Self> {
        Some(s)
    }
    fn from_map<'de, A: de::MapAccess<'de>>(_: A) -> Result<Self, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Map, &Self::EXPECTING))
    }
}

impl ShortOrFull for ResizeSpec {
    const EXPECTING: &'static str = "a resize: an integer (the shorter side), [height, width] or {size, interpolation}";
    fn from_size(s: Size) -> Option<Self> {
        Some(ResizeSpec::Size(s))
    }
    fn from_map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        map_into(map).map(ResizeSpec::Full)
    }
}

impl ShortOrFull for RandomResizedCropSpec {
    const EXPECTING: &'static str = "a random resized crop: a size, or {size, scale, ratio, interpolation}";
    fn from_size(s: Size) -> Option<Self> {
        Some(RandomResizedCropSpec::Size(s))
    }
    fn from_map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        map_into(map).map(RandomResizedCropSpec::Full)
    }
}

impl ShortOrFull for TransformSpec {
    const EXPECTING: &'static str = "a transform: a preset name (office31) or a list of steps";
    fn from_size(_: Size) -> Option<Self> {
        None
    }
    fn from_map<'de, A: de::MapAccess<'de>>(_: A) -> Result<Self, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Map, &Self::EXPECTING))
    }
    fn from_str<E: de::Error>(v: &str) -> Option<Result<Self, E>> {
        Some(Ok(TransformSpec::Preset(v.to_string())))
    }
    fn from_seq<'de, A: de::SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Vec::<Step>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(TransformSpec::Steps)
    }
}

macro_rules! short_or_full {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ShortOrFullVisitor(std::marker::PhantomData))
            }
        }
    )*};
}
short_or_full!(Size, ResizeSpec, RandomResizedCropSpec, TransformSpec);

/// The named presets: (name, training steps, evaluation steps).
pub const PRESETS: [&str; 1] = ["office31"];

impl TransformSpec {
    /// The steps, for training (`train`) or evaluation. `office31` is TLlib's default for Office-31, Office-Home
    /// and VisDA (`utils.get_train_transform` / `get_val_transform`, resizing `default`): `ResizeImage(256)` (PIL's
    /// `resize((256, 256))`, bicubic), then `RandomResizedCrop(224)` and `RandomHorizontalFlip()` for training,
    /// `CenterCrop(224)` for evaluation.
    pub fn steps(&self, train: bool) -> std::result::Result<Vec<Step>, String> {
        match self {
            TransformSpec::Steps(s) => Ok(s.clone()),
            TransformSpec::Preset(p) if p == "office31" => {
                let resize = Step::Resize(ResizeSpec::Full(ResizeFull {
                    size: Size::Hw([256, 256]),
                    interpolation: Interpolation::Bicubic,
                }));
                Ok(if train {
                    vec![
                        resize,
                        Step::RandomResizedCrop(RandomResizedCropSpec::Size(Size::One(224))),
                        Step::HorizontalFlip(0.5),
                    ]
                } else {
                    vec![resize, Step::CenterCrop(Size::One(224))]
                })
            }
            TransformSpec::Preset(p) => Err(format!("unknown preset `{p}` (presets: {})", PRESETS.join(", "))),
        }
    }
}

/// The resolved steps of a dataset's training and evaluation transforms, the length of their common deterministic
/// prefix (what `load: memory` keeps decoded), and the output size both must have.
#[derive(Debug, Clone, PartialEq)]
pub struct Transforms {
    /// None: training batches get the evaluation steps.
    pub train: Option<Vec<Step>>,
    pub eval: Vec<Step>,
    /// Steps at the start of `eval` (and of `train`) that are the same and draw no random numbers.
    pub prefix: usize,
}

impl Transforms {
    /// Resolves `train_transform` and `eval_transform` (None: an exact resize to `size`); both must end at `size`.
    /// Errors name the key (`train_transform[1].random_resized_crop: ...`).
    pub fn new(
        train: Option<&TransformSpec>,
        eval: Option<&TransformSpec>,
        size: [usize; 2],
    ) -> std::result::Result<Self, String> {
        let resolve = |key: &str, spec: &TransformSpec, is_train: bool| -> std::result::Result<Vec<Step>, String> {
            let steps = spec.steps(is_train).map_err(|m| format!("{key}: {m}"))?;
            if steps.is_empty() {
                return Err(format!("{key}: at least one step is needed"));
            }
            for (i, s) in steps.iter().enumerate() {
                s.validate().map_err(|m| format!("{key}[{i}].{}: {m}", s.name()))?;
                if !is_train && s.is_random() {
                    return Err(format!(
                        "{key}[{i}].{}: evaluation transforms must be deterministic (this step is random)",
                        s.name()
                    ));
                }
            }
            match output_size(&steps) {
                Some(out) if out == size => Ok(steps),
                Some(out) => Err(format!(
                    "{key}: its output is {}×{}, but `image.size` is {}×{} (set `image.size: [{}, {}]`)",
                    out[0], out[1], size[0], size[1], out[0], out[1]
                )),
                None => Err(format!(
                    "{key}: must end with a fixed size (a crop, a random resized crop or `resize: [height, width]`)"
                )),
            }
        };
        let eval = match eval {
            Some(e) => resolve("eval_transform", e, false)?,
            None => vec![Step::Resize(ResizeSpec::Size(Size::Hw(size)))],
        };
        let train = train.map(|t| resolve("train_transform", t, true)).transpose()?;
        let prefix = match &train {
            Some(t) => t.iter().zip(&eval).take_while(|(a, b)| a == b && !a.is_random()).count(),
            None => eval.len(),
        };
        Ok(Self { train, eval, prefix })
    }

    /// The deterministic prefix applied to a decoded image (what a memory-loaded domain keeps).
    pub fn apply_prefix(&self, img: Image) -> std::result::Result<Image, String> {
        apply(&self.eval[..self.prefix], img, None)
    }

    /// The rest of the evaluation steps, after the prefix.
    pub fn apply_eval_rest(&self, img: Image) -> std::result::Result<Image, String> {
        apply(&self.eval[self.prefix..], img, None)
    }

    /// The rest of the training steps, after the prefix, with the sample's random stream.
    pub fn apply_train_rest(&self, img: Image, rng: &mut ChaCha8Rng) -> std::result::Result<Image, String> {
        match &self.train {
            Some(t) => apply(&t[self.prefix..], img, Some(rng)),
            None => self.apply_eval_rest(img),
        }
    }
}

/// The `[height, width]` the steps end at, when the last step that sets a size sets a fixed one.
pub fn output_size(steps: &[Step]) -> Option<[usize; 2]> {
    steps.iter().rev().find_map(|s| match s {
        Step::Resize(ResizeSpec::Size(Size::One(_))) => Some(None),
        Step::Resize(ResizeSpec::Full(ResizeFull { size: Size::One(_), .. })) => Some(None),
        Step::Resize(ResizeSpec::Size(Size::Hw(hw)) | ResizeSpec::Full(ResizeFull { size: Size::Hw(hw), .. })) => {
            Some(Some(*hw))
        }
        Step::CenterCrop(s) | Step::RandomCrop(s) => Some(Some(s.hw())),
        Step::RandomResizedCrop(c) => Some(Some(c.full().size.hw())),
        Step::HorizontalFlip(_) | Step::ColorJitter(_) => None,
    })?
}

/// The random stream of one drawn sample: a ChaCha8 generator keyed by the stream's seed and the draw's number (a
/// domain streamed from files and the same domain held in memory draw the same numbers for the same batch).
pub fn sample_rng(seed: u64, draw: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    ChaCha8Rng::seed_from_u64(mix(seed ^ mix(draw)))
}

/// Applies `steps` to `img`; random steps need `rng`.
pub fn apply(steps: &[Step], mut img: Image, mut rng: Option<&mut ChaCha8Rng>) -> std::result::Result<Image, String> {
    for s in steps {
        img = match s {
            Step::Resize(spec) => {
                let (size, interp) = match spec {
                    ResizeSpec::Size(s) => (*s, Interpolation::Bilinear),
                    ResizeSpec::Full(f) => (f.size, f.interpolation),
                };
                let [oh, ow] = match size {
                    Size::Hw(hw) => hw,
                    // torchvision: the shorter side to `s`, the longer one `int(s · long / short)`.
                    Size::One(s) if img.width <= img.height => [s * img.height / img.width, s],
                    Size::One(s) => [s, s * img.width / img.height],
                };
                resized_crop(&img, [0, 0, img.height, img.width], [oh, ow], interp)?
            }
            Step::CenterCrop(size) => center_crop(&img, size.hw()),
            Step::RandomCrop(size) => {
                let [th, tw] = size.hw();
                if img.height < th || img.width < tw {
                    return Err(format!(
                        "random_crop: the image is {}×{}, smaller than the crop {th}×{tw}",
                        img.height, img.width
                    ));
                }
                let r = rng.as_deref_mut().ok_or("random_crop needs a random stream")?;
                let i = r.random_range(0..=img.height - th);
                let j = r.random_range(0..=img.width - tw);
                crop(&img, [i, j, th, tw])
            }
            Step::RandomResizedCrop(spec) => {
                let c = spec.full();
                let r = rng.as_deref_mut().ok_or("random_resized_crop needs a random stream")?;
                let b = random_resized_crop_box(img.height, img.width, c.scale, c.ratio, r);
                resized_crop(&img, b, c.size.hw(), c.interpolation)?
            }
            Step::HorizontalFlip(p) => {
                let r = rng.as_deref_mut().ok_or("horizontal_flip needs a random stream")?;
                if r.random::<f64>() < *p { hflip(&img) } else { img }
            }
            Step::ColorJitter(j) => {
                let r = rng.as_deref_mut().ok_or("color_jitter needs a random stream")?;
                color_jitter(img, j, r)
            }
        };
    }
    Ok(img)
}

/// torchvision's `RandomResizedCrop.get_params`: `[top, left, height, width]`.
fn random_resized_crop_box(h: usize, w: usize, scale: [f64; 2], ratio: [f64; 2], r: &mut ChaCha8Rng) -> [usize; 4] {
    let area = (h * w) as f64;
    let (l0, l1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * r.random_range(scale[0]..=scale[1]);
        let aspect = if l0 < l1 { r.random_range(l0..l1) } else { l0 }.exp();
        let cw = (target * aspect).sqrt().round_ties_even() as usize;
        let ch = (target / aspect).sqrt().round_ties_even() as usize;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let i = r.random_range(0..=h - ch);
            let j = r.random_range(0..=w - cw);
            return [i, j, ch, cw];
        }
    }
    // Fallback: the central crop of the ratio's nearest bound.
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < ratio[0] {
        (((w as f64) / ratio[0]).round_ties_even() as usize, w)
    } else if in_ratio > ratio[1] {
        (h, ((h as f64) * ratio[1]).round_ties_even() as usize)
    } else {
        (h, w)
    };
    let (ch, cw) = (ch.clamp(1, h), cw.clamp(1, w));
    [(h - ch) / 2, (w - cw) / 2, ch, cw]
}

/// The box `[top, left, height, width]` of `img`, cropped, then resized to `[oh, ow]`: the horizontal pass first, rounded to
/// 8 bits, then the vertical one, as Pillow does (fast_image_resize runs the vertical pass first on 8-bit images,
/// which differs from Pillow by up to 15 levels where a bicubic filter overshoots and is clipped in between).
fn resized_crop(
    img: &Image,
    [top, left, bh, bw]: [usize; 4],
    [oh, ow]: [usize; 2],
    interp: Interpolation,
) -> std::result::Result<Image, String> {
    let pixel = if img.channels == 1 { fr::PixelType::U8 } else { fr::PixelType::U8x3 };
    let pass = |src: &Image, crop: [usize; 4], out: [usize; 2]| -> std::result::Result<Image, String> {
        let [t, l, h, w] = crop;
        if [t, l, h, w] == [0, 0, out[0], out[1]] && (src.height, src.width) == (h, w) {
            return Ok(src.clone());
        }
        let view = fr::images::ImageRef::new(src.width as u32, src.height as u32, &src.data, pixel)
            .map_err(|e| format!("resize: {e}"))?;
        let mut dst = fr::images::Image::new(out[1] as u32, out[0] as u32, pixel);
        let opts = fr::ResizeOptions::new().resize_alg(interp.alg()).crop(l as f64, t as f64, w as f64, h as f64);
        fr::Resizer::new().resize(&view, &mut dst, &opts).map_err(|e| format!("resize: {e}"))?;
        Ok(Image { width: out[1], height: out[0], channels: src.channels, data: dst.into_vec() })
    };
    // Cropped first (as torchvision's `resized_crop`): the filter sees no pixel outside the box.
    let boxed;
    let src = if [top, left, bh, bw] == [0, 0, img.height, img.width] {
        img
    } else {
        boxed = crop(img, [top, left, bh, bw]);
        &boxed
    };
    let wide = pass(src, [0, 0, bh, bw], [bh, ow])?;
    pass(&wide, [0, 0, bh, ow], [oh, ow])
}

/// The box `[top, left, height, width]` of `img` (inside it).
fn crop(img: &Image, [top, left, h, w]: [usize; 4]) -> Image {
    let c = img.channels;
    let mut data = Vec::with_capacity(h * w * c);
    for y in top..top + h {
        let row = (y * img.width + left) * c;
        data.extend_from_slice(&img.data[row..row + w * c]);
    }
    Image { width: w, height: h, channels: c, data }
}

/// torchvision's `CenterCrop`: black padding first where the image is smaller, then the crop at
/// `round((size − crop) / 2)` (Python's rounding: ties to even).
fn center_crop(img: &Image, [th, tw]: [usize; 2]) -> Image {
    let img = if img.height < th || img.width < tw {
        let (ph, pw) = (th.max(img.height), tw.max(img.width));
        let (top, left) = (ph.saturating_sub(img.height) / 2, pw.saturating_sub(img.width) / 2);
        let c = img.channels;
        let mut data = vec![0u8; ph * pw * c];
        for y in 0..img.height {
            let from = y * img.width * c;
            let to = ((y + top) * pw + left) * c;
            data[to..to + img.width * c].copy_from_slice(&img.data[from..from + img.width * c]);
        }
        Image { width: pw, height: ph, channels: c, data }
    } else {
        img.clone()
    };
    let top = ((img.height - th) as f64 / 2.0).round_ties_even() as usize;
    let left = ((img.width - tw) as f64 / 2.0).round_ties_even() as usize;
    crop(&img, [top, left, th, tw])
}

fn hflip(img: &Image) -> Image {
    let c = img.channels;
    let mut data = Vec::with_capacity(img.data.len());
    for row in img.data.chunks_exact(img.width * c) {
        for px in row.chunks_exact(c).rev() {
            data.extend_from_slice(px);
        }
    }
    Image { data, ..img.clone() }
}

/// PIL's grey level of an RGB pixel (ITU-R 601-2 luma, `L = R·299/1000 + G·587/1000 + B·114/1000`, rounded).
fn luma(p: &[u8]) -> u8 {
    ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000) >> 16) as u8
}

/// `degenerate + f · (img − degenerate)`, rounded and clipped to 0..=255 (PIL's `ImageEnhance` blend).
fn blend(v: u8, degenerate: f64, f: f64) -> u8 {
    (degenerate + f * (f64::from(v) - degenerate)).round().clamp(0.0, 255.0) as u8
}

fn color_jitter(mut img: Image, j: &ColorJitter, r: &mut ChaCha8Rng) -> Image {
    let factor = |x: f64, r: &mut ChaCha8Rng| (x > 0.0).then(|| r.random_range((1.0 - x).max(0.0)..=1.0 + x));
    let mut order = [0usize, 1, 2, 3];
    order.shuffle(r);
    let (b, c, s) = (factor(j.brightness, r), factor(j.contrast, r), factor(j.saturation, r));
    let h = (j.hue > 0.0).then(|| r.random_range(-j.hue..=j.hue));
    for k in order {
        match (k, b, c, s, h) {
            (0, Some(f), ..) => brightness(&mut img, f),
            (1, _, Some(f), ..) => contrast(&mut img, f),
            (2, _, _, Some(f), _) => saturation(&mut img, f),
            (3, _, _, _, Some(shift)) => hue(&mut img, shift),
            _ => {}
        }
    }
    img
}

/// PIL's `ImageEnhance.Brightness`: a blend with black.
fn brightness(img: &mut Image, f: f64) {
    img.data.iter_mut().for_each(|v| *v = blend(*v, 0.0, f));
}

/// PIL's `ImageEnhance.Contrast`: a blend with the image's mean grey level, rounded as `int(mean + 0.5)`.
fn contrast(img: &mut Image, f: f64) {
    let n = (img.width * img.height).max(1) as f64;
    let sum: f64 = if img.channels == 3 {
        img.data.chunks_exact(3).map(|p| f64::from(luma(p))).sum()
    } else {
        img.data.iter().map(|&v| f64::from(v)).sum()
    };
    let mean = (sum / n + 0.5).floor();
    img.data.iter_mut().for_each(|v| *v = blend(*v, mean, f));
}

/// PIL's `ImageEnhance.Color`: a blend of each pixel with its grey level (nothing for grey images).
fn saturation(img: &mut Image, f: f64) {
    if img.channels != 3 {
        return;
    }
    for p in img.data.chunks_exact_mut(3) {
        let g = f64::from(luma(p));
        p.iter_mut().for_each(|v| *v = blend(*v, g, f));
    }
}

/// torchvision's `adjust_hue` on a PIL image: the 8-bit H band of HSV shifted by `uint8(shift · 255)`, wrapping
/// (nothing for grey images).
fn hue(img: &mut Image, shift: f64) {
    if img.channels != 3 {
        return;
    }
    let d = ((shift * 255.0) as i64).rem_euclid(256) as u8;
    for p in img.data.chunks_exact_mut(3) {
        let (hh, ss, vv) = rgb_to_hsv(p);
        p.copy_from_slice(&hsv_to_rgb(hh.wrapping_add(d), ss, vv));
    }
}

/// 8-bit HSV as PIL's `convert("HSV")`: hue in 0..=255 for a full turn.
fn rgb_to_hsv(p: &[u8]) -> (u8, u8, u8) {
    let (r, g, b) = (f64::from(p[0]) / 255.0, f64::from(p[1]) / 255.0, f64::from(p[2]) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let v = max;
    if max == min {
        return (0, 0, (v * 255.0).round() as u8);
    }
    let s = (max - min) / max;
    let rc = (max - r) / (max - min);
    let gc = (max - g) / (max - min);
    let bc = (max - b) / (max - min);
    let h = if r == max {
        bc - gc
    } else if g == max {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (h / 6.0).rem_euclid(1.0);
    // Pillow truncates hue and saturation to 8 bits.
    ((h * 255.0) as u8, (s * 255.0) as u8, (v * 255.0).round() as u8)
}

fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    let (h, s, v) = (f64::from(h) / 255.0, f64::from(s) / 255.0, f64::from(v) / 255.0);
    let to = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
    if s == 0.0 {
        return [to(v); 3];
    }
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match (i as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [to(r), to(g), to(b)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The test image of `tests/reference/make_transform_reference.py`.
    fn test_image() -> Image {
        let (w, h) = (37usize, 29usize);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    data.push(((3 * x * x + 11 * y + 70 * c + (x * y) % 17) % 256) as u8);
                }
            }
        }
        Image { width: w, height: h, channels: 3, data }
    }

    fn reference() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/reference/transform_reference.json")).unwrap()
    }

    fn bytes(v: &serde_json::Value) -> Vec<u8> {
        v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect()
    }

    /// The largest difference in grey levels, and how many values differ.
    fn diff(a: &[u8], b: &[u8]) -> (u8, usize) {
        assert_eq!(a.len(), b.len());
        let d = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y));
        (d.clone().max().unwrap_or(0), d.filter(|&v| v > 0).count())
    }

    #[test]
    fn matches_pillow() {
        let r = reference();
        let img = test_image();
        for (name, interp) in [
            ("resize_down_bilinear", Interpolation::Bilinear),
            ("resize_down_bicubic", Interpolation::Bicubic),
            ("resize_up_bilinear", Interpolation::Bilinear),
            ("resize_up_bicubic", Interpolation::Bicubic),
        ] {
            let e = &r[name];
            let size = [e["size"][0].as_u64().unwrap() as usize, e["size"][1].as_u64().unwrap() as usize];
            let step = Step::Resize(ResizeSpec::Full(ResizeFull { size: Size::Hw(size), interpolation: interp }));
            let out = apply(&[step], img.clone(), None).unwrap();
            let (max, n) = diff(&out.data, &bytes(&e["data"]));
            assert!(max <= 1, "{name}: differs from Pillow by up to {max} levels ({n} values)");
        }
        let e = &r["crop_resize"];
        let out = resized_crop(&img, [3, 5, 15, 20], [9, 11], Interpolation::Bilinear).unwrap();
        let (max, n) = diff(&out.data, &bytes(&e["data"]));
        assert!(max <= 1, "crop + resize: up to {max} levels ({n} values)");
        let grey: Vec<u8> = img.data.chunks_exact(3).map(luma).collect();
        assert_eq!(grey, bytes(&r["grey"]), "PIL's L conversion");
        let g = Image { width: 37, height: 29, channels: 1, data: grey };
        let out = apply(&[Step::Resize(ResizeSpec::Size(Size::Hw([12, 16])))], g, None).unwrap();
        let (max, _) = diff(&out.data, &bytes(&r["grey_resize"]["data"]));
        assert!(max <= 1, "grey resize: {max}");
        type Op = fn(&mut Image, f64);
        for (name, key, op) in [
            ("brightness", "factor", brightness as Op),
            ("contrast", "factor", contrast as Op),
            ("saturation", "factor", saturation as Op),
            ("hue", "shift", hue as Op),
        ] {
            let mut out = img.clone();
            op(&mut out, r[name][key].as_f64().unwrap());
            let (max, n) = diff(&out.data, &bytes(&r[name]["data"]));
            // PIL's enhancers blend in fixed point, and its HSV conversion rounds differently: 1–2 levels.
            assert!(max <= 2, "{name}: differs from Pillow by up to {max} levels ({n} of {} values)", out.data.len());
        }
    }

    #[test]
    fn crops_and_flips_follow_torchvision() {
        let img = test_image(); // 29 high, 37 wide
        let px = |im: &Image, y: usize, x: usize| im.data[(y * im.width + x) * 3];
        // Centre crop at round((29 − 20) / 2) = round(4.5) = 4 (ties to even), round((37 − 10) / 2) = 14 (13.5).
        let c = center_crop(&img, [20, 10]);
        assert_eq!((c.height, c.width), (20, 10));
        assert_eq!(px(&c, 0, 0), px(&img, 4, 14));
        // Larger than the image: black padding, (40 − 29) / 2 = 5 rows above, then the crop.
        let p = center_crop(&img, [40, 37]);
        assert_eq!((p.height, p.width), (40, 37));
        assert_eq!(px(&p, 4, 3), 0);
        assert_eq!(px(&p, 5, 3), px(&img, 0, 3));
        let f = hflip(&img);
        assert_eq!(px(&f, 7, 0), px(&img, 7, 36));
        assert_eq!(hflip(&f), img);
        // Random crops stay inside; a crop larger than the image is an error naming both sizes.
        let mut r = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let o = apply(&[Step::RandomCrop(Size::Hw([20, 30]))], img.clone(), Some(&mut r)).unwrap();
            assert_eq!((o.height, o.width), (20, 30));
        }
        let e = apply(&[Step::RandomCrop(Size::One(30))], img.clone(), Some(&mut r)).unwrap_err();
        assert!(e.contains("29×37") && e.contains("30×30"), "{e}");
        // Random steps need the random stream.
        assert!(apply(&[Step::HorizontalFlip(0.5)], img.clone(), None).is_err());
        // The shorter side to 58: 29 → 58, 37 → int(58 · 37 / 29) = 74.
        let o = apply(&[Step::Resize(ResizeSpec::Size(Size::One(58)))], img, None).unwrap();
        assert_eq!((o.height, o.width), (58, 74));
    }

    #[test]
    fn random_resized_crop_boxes_follow_the_scale_and_ratio() {
        let mut r = ChaCha8Rng::seed_from_u64(7);
        let (h, w) = (300usize, 400usize);
        let (mut areas, mut n) = (0.0, 0);
        for _ in 0..2000 {
            let [i, j, ch, cw] = random_resized_crop_box(h, w, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut r);
            assert!(i + ch <= h && j + cw <= w && ch > 0 && cw > 0);
            let (a, q) = ((ch * cw) as f64 / (h * w) as f64, cw as f64 / ch as f64);
            if (ch, cw) != (h, w) {
                assert!((0.07..=1.01).contains(&a) && (0.73..=1.37).contains(&q), "area {a}, ratio {q}");
            }
            areas += a;
            n += 1;
        }
        // Accepted draws of U(0.08, 1) whose box fits: the mean area fraction is well inside (0.08, 1).
        let mean = areas / n as f64;
        assert!((0.35..0.6).contains(&mean), "mean area fraction {mean}");
        // A strip 1 high cannot hold any box of the ratio range: the fallback is the central crop of the nearest
        // ratio (here the whole height and width · 4/3 of it).
        let [i, j, ch, cw] = random_resized_crop_box(3, 100, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut r);
        assert_eq!([i, ch, cw], [0, 3, 4]);
        assert_eq!(j, (100 - 4) / 2);
    }

    #[test]
    fn office31_preset_and_errors_name_the_key() {
        let preset = TransformSpec::Preset("office31".into());
        let t = Transforms::new(Some(&preset), Some(&preset), [224, 224]).unwrap();
        assert_eq!(t.prefix, 1, "the 256×256 bicubic resize is shared and deterministic");
        assert_eq!(t.eval.len(), 2);
        let img = Image { width: 300, height: 200, channels: 3, data: vec![90; 300 * 200 * 3] };
        let base = t.apply_prefix(img).unwrap();
        assert_eq!((base.height, base.width), (256, 256));
        let ev = t.apply_eval_rest(base.clone()).unwrap();
        assert_eq!((ev.height, ev.width), (224, 224));
        let mut r1 = sample_rng(3, 10);
        let mut r2 = sample_rng(3, 10);
        let a = t.apply_train_rest(base.clone(), &mut r1).unwrap();
        assert_eq!(a, t.apply_train_rest(base, &mut r2).unwrap(), "same seed and draw, same image");
        assert_ne!(sample_rng(3, 10).random::<u64>(), sample_rng(3, 11).random::<u64>());
        let err = |train: Option<&str>, eval: Option<&str>, size: [usize; 2]| {
            let parse = |y: &str| serde_saphyr::from_str::<TransformSpec>(y).unwrap();
            let (tr, ev) = (train.map(parse), eval.map(parse));
            Transforms::new(tr.as_ref(), ev.as_ref(), size).unwrap_err()
        };
        assert_eq!(
            err(None, Some("[{resize: 256}, {random_crop: 224}]"), [224, 224]),
            "eval_transform[1].random_crop: evaluation transforms must be deterministic (this step is random)"
        );
        assert!(err(Some("office31"), None, [64, 64]).contains("its output is 224×224, but `image.size` is 64×64"));
        assert!(
            err(Some("[{resize: 256}, {horizontal_flip: 0.5}]"), None, [224, 224])
                .contains("must end with a fixed size")
        );
        assert!(err(Some("office-31"), None, [224, 224]).contains("unknown preset `office-31` (presets: office31)"));
        let e = err(Some("[{random_resized_crop: {size: 224, scale: [0.5, 0.2]}}]"), None, [224, 224]);
        assert!(e.starts_with("train_transform[0].random_resized_crop: scale: want 0 < min <= max <= 1"), "{e}");
        let e = err(Some("[{resize: 100000}]"), None, [224, 224]);
        assert!(e.contains("image-side limit"), "{e}");
        let e = err(Some("[{random_crop: 224}, {horizontal_flip: 1.5}]"), None, [224, 224]);
        assert!(e.starts_with("train_transform[1].horizontal_flip: a probability in [0, 1]"), "{e}");
        // The YAML forms of a step, and unknown steps and keys.
        let steps: Vec<Step> = serde_saphyr::from_str(
            "[{resize: 256}, {resize: [256, 256]}, {resize: {size: 256, interpolation: bicubic}}, {center_crop: [224, 200]}]",
        )
        .unwrap();
        assert_eq!(steps[0], Step::Resize(ResizeSpec::Size(Size::One(256))));
        assert_eq!(steps[1], Step::Resize(ResizeSpec::Size(Size::Hw([256, 256]))));
        assert!(matches!(&steps[2], Step::Resize(ResizeSpec::Full(f)) if f.interpolation == Interpolation::Bicubic));
        assert_eq!(output_size(&steps), Some([224, 200]));
        let e = serde_saphyr::from_str::<Vec<Step>>("[{rotate: 10}]").unwrap_err().to_string();
        assert!(e.contains("unknown variant `rotate`"), "{e}");
        let e = serde_saphyr::from_str::<Vec<Step>>("[{color_jitter: {brightnes: 0.4}}]").unwrap_err().to_string();
        assert!(e.contains("unknown field `brightnes`"), "{e}");
    }

    #[test]
    fn color_jitter_draws_stay_in_range_and_grey_images_keep_their_channels() {
        let img = test_image();
        let j = ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 };
        let mut r = ChaCha8Rng::seed_from_u64(5);
        let a = color_jitter(img.clone(), &j, &mut r);
        assert_eq!((a.width, a.height, a.channels), (37, 29, 3));
        assert_ne!(a, img);
        // No jitter asked: the image is unchanged.
        assert_eq!(color_jitter(img.clone(), &ColorJitter::default(), &mut r), img);
        let g = Image { width: 4, height: 2, channels: 1, data: vec![10, 50, 90, 130, 170, 210, 250, 30] };
        let out = color_jitter(g.clone(), &ColorJitter { saturation: 0.9, hue: 0.5, ..Default::default() }, &mut r);
        assert_eq!(out, g, "saturation and hue leave grey images alone");
    }
}
