//! Every benchmark dataset loads from the shared data directory with its documented counts, dimensions and
//! label histograms; the 1-NN sanity check reproduces the JDA paper; the fetcher works against a local
//! HTTP server (resume, wrong checksum, truncated transfer).
//!
//! The data directory is `$DALAB_DATA_DIR` (relative to the current or the workspace directory), else
//! `<workspace>/../shared/datasets`. When neither exists the
//! tests fail on CI (`CI` set) and are skipped with a note elsewhere.

use dalab_data::knn::{jda_table, one_nn_accuracy};
use dalab_data::{DatasetConfig, Domain};
use std::path::{Path, PathBuf};

fn data_dir() -> Option<PathBuf> {
    let env = std::env::var_os("DALAB_DATA_DIR").filter(|v| !v.is_empty()).map(PathBuf::from);
    let workspace = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let candidates = [
        env.clone(),
        // Tests run in the crate directory; CI's `DALAB_DATA_DIR=../shared/datasets` is relative to the
        // workspace root.
        env.filter(|p| p.is_relative()).map(|p| workspace.join(p)),
        Some(workspace.join("../shared/datasets")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.join("office_caltech10_surf").is_dir() {
            return Some(c);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but no data directory: set DALAB_DATA_DIR or provide ../shared/datasets"
    );
    eprintln!("note: no data directory (DALAB_DATA_DIR or ../shared/datasets); skipping");
    None
}

fn cfg(yaml: &str) -> DatasetConfig {
    serde_saphyr::from_str(yaml).unwrap()
}

fn check(d: &Domain, shape: &[usize], hist: &[usize]) {
    assert_eq!(d.dense_x().unwrap().shape(), shape, "{}", d.name);
    assert_eq!(d.label_histogram(), hist, "{}", d.name);
}

#[test]
fn office_caltech_surf_counts_histograms_and_protocols() {
    let Some(dir) = data_dir() else { return };
    let c = cfg("name: office-caltech10-surf\n");
    let t = c.load_task("A", "C", &dir).unwrap();
    check(&t.source, &[958, 800], &[92, 82, 94, 99, 100, 100, 99, 100, 94, 98]);
    check(&t.target, &[1123, 800], &[151, 110, 100, 138, 85, 128, 133, 94, 87, 97]);
    assert_eq!(t.source.class_names[0], "back_pack");
    let t = c.load_task("D", "W", &dir).unwrap();
    check(&t.source, &[157, 800], &[12, 21, 12, 13, 10, 24, 22, 12, 8, 23]);
    check(&t.target, &[295, 800], &[29, 21, 31, 27, 27, 30, 43, 30, 27, 30]);
    assert!(t.target_test.is_none());
    // sum-zscore: every feature of a domain has mean 0 and (population) sd 1.
    let x = t.target.dense_x().unwrap().view().into_dimensionality::<ndarray::Ix2>().unwrap().mapv(f64::from);
    let m = x.mean_axis(ndarray::Axis(0)).unwrap();
    let sd = x.std_axis(ndarray::Axis(0), 0.0);
    assert!(m.iter().all(|v| v.abs() < 1e-5) && sd.iter().all(|v| (v - 1.0).abs() < 1e-4));
    // CORAL standard: 20 per class from A, 8 per class from W (D has a class with 8), seeded.
    let s = cfg("name: office-caltech10-surf\nprotocol: standard\nsample_seed: 4\n");
    let t1 = s.load_task("A", "W", &dir).unwrap();
    assert_eq!(t1.source.label_histogram(), vec![20; 10]);
    assert_eq!(t1.target.len(), 295);
    let t2 = s.load_task("W", "A", &dir).unwrap();
    assert_eq!(t2.source.label_histogram(), vec![8; 10]);
    assert_eq!(s.load_task("A", "W", &dir).unwrap().source.dense_x().unwrap(), t1.source.dense_x().unwrap());
    let s5 = cfg("name: office-caltech10-surf\nprotocol: standard\nsample_seed: 5\n");
    assert_ne!(s5.load_task("A", "W", &dir).unwrap().source.dense_x().unwrap(), t1.source.dense_x().unwrap());
}

#[test]
fn amazon_reviews_counts() {
    let Some(dir) = data_dir() else { return };
    let a = dalab_data::amazon::AmazonConfig::default();
    for (d, n_test) in [("books", 4465), ("dvd", 3586), ("electronics", 5681), ("kitchen", 5945)] {
        check(&a.load_split(d, "train", &dir).unwrap(), &[2000, 5000], &[1000, 1000]);
        let tt = a.load_split(d, "test", &dir).unwrap();
        assert_eq!(tt.dense_x().unwrap().shape(), &[n_test, 5000], "{d}");
        assert_eq!(tt.name, format!("{d}-test"));
    }
    // A task: source train, target train, target test.
    let t = cfg("name: amazon-reviews\n").load_task("kitchen", "books", &dir).unwrap();
    assert_eq!((t.source.name.as_str(), t.target.name.as_str()), ("kitchen", "books"));
    assert_eq!(t.target_test.unwrap().len(), 4465);
    // Transforms: binary features are 0/1; log1p of counts.
    let counts = t.source.dense_x().unwrap();
    let load = |y: &str| cfg(y).load_task("kitchen", "books", &dir).unwrap().source.dense_x().unwrap().clone();
    let bin = load("name: amazon-reviews\ntransform: binary\n");
    let log = load("name: amazon-reviews\ntransform: log1p\n");
    assert!(bin.iter().all(|&v| v == 0.0 || v == 1.0));
    assert_eq!(bin.iter().filter(|&&v| v == 1.0).count(), counts.iter().filter(|&&v| v > 0.0).count());
    assert!(counts.iter().zip(log.iter()).all(|(c, l)| (c.ln_1p() - l).abs() < 1e-6));
    let books = a.load_split("books", "train", &dir).unwrap();
    assert_eq!(books.dense_x().unwrap()[[0, 0]], 6.0); // first line of books_train: `1 0:6 1:8 ...`
}

#[test]
fn digits_counts_shapes_and_protocols() {
    let Some(dir) = data_dir() else { return };
    let hist = |y: &[i64]| {
        let mut h = vec![0usize; 10];
        y.iter().for_each(|&c| h[c as usize] += 1);
        h
    };
    let raw = |d: &str, s: &str| dalab_data::digits::load_raw(d, s, &dir).unwrap();
    let (x, y) = raw("mnist", "train");
    assert_eq!((x.shape(), hist(&y)), (&[5000, 1, 28, 28][..], vec![500; 10]));
    let (x, y) = raw("mnist", "test");
    assert_eq!(
        (x.shape(), hist(&y)),
        (&[10000, 1, 28, 28][..], vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    );
    let (x, y) = raw("usps", "test");
    assert_eq!((x.shape(), hist(&y)), (&[2007, 1, 16, 16][..], vec![359, 264, 198, 166, 200, 160, 170, 147, 166, 177]));
    assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Default task: USPS resized to MNIST's 28×28, target test = MNIST test.
    let usps_train = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644];
    let t = cfg("name: digits\n").load_task("usps", "mnist", &dir).unwrap();
    check(&t.source, &[7291, 1, 28, 28], &usps_train);
    check(&t.target, &[5000, 1, 28, 28], &[500; 10]);
    assert_eq!(t.target_test.as_ref().unwrap().dense_x().unwrap().shape(), &[10000, 1, 28, 28]);
    assert!(t.source.dense_x().unwrap().iter().all(|&v| (0.0..=1.0).contains(&v)));
    // ADDA: 2000 MNIST / 1800 USPS drawn with a seed, at USPS's native size here, in [-1, 1].
    let adda = |seed: u64| {
        cfg(&format!("name: digits\nprotocol: adda\nsize: 16\nnormalize: symmetric\nsample_seed: {seed}\n"))
            .load_task("mnist", "usps", &dir)
            .unwrap()
    };
    let a = adda(1);
    assert_eq!(a.source.dense_x().unwrap().shape(), &[2000, 1, 16, 16]);
    assert_eq!(a.target.dense_x().unwrap().shape(), &[1800, 1, 16, 16]);
    assert_eq!(a.target_test.as_ref().unwrap().len(), 2007);
    assert!(
        a.source.dense_x().unwrap().iter().all(|&v| (-1.0..=1.0).contains(&v))
            && a.source.dense_x().unwrap().iter().any(|&v| v < -0.99)
    );
    assert_eq!(adda(1).target.y, a.target.y);
    assert_ne!(adda(2).target.y, a.target.y);
    // `bytes`: the same draw at 255× the unit scale (the ADDA authors' pixels).
    let unit =
        cfg("name: digits\nprotocol: adda\nsize: 32\nsample_seed: 1\n").load_task("mnist", "usps", &dir).unwrap();
    let bytes = cfg("name: digits\nprotocol: adda\nsize: 32\nnormalize: bytes\nsample_seed: 1\n")
        .load_task("mnist", "usps", &dir)
        .unwrap();
    let (u, b) = (unit.target.dense_x().unwrap(), bytes.target.dense_x().unwrap());
    assert_eq!(b.shape(), &[1800, 1, 32, 32]);
    assert!(u.iter().zip(b.iter()).all(|(u, b)| (u * 255.0 - b).abs() < 1e-3));
    assert!(b.iter().any(|&v| v > 254.0));
    // `resize: tf1` (TensorFlow 1.x's grid, the ADDA code's): USPS 16 → 32 puts input pixel (i, j) on output
    // (2i, 2j) exactly; the centred grid does not. The key is omitted when default (trial ids unchanged).
    let (raw, _) = dalab_data::digits::load_raw("usps", "train", &dir).unwrap();
    let first_usps = |resize: &str| {
        let t = cfg(&format!("name: digits\nsize: 32\nresize: {resize}\n")).load_task("mnist", "usps", &dir).unwrap();
        t.target.dense_x().unwrap().index_axis(ndarray::Axis(0), 0).to_owned()
    };
    let on_grid = |x: &ndarray::ArrayD<f32>| {
        (0..16)
            .flat_map(|i| (0..16).map(move |j| (i, j)))
            .all(|(i, j)| (x[[0, 2 * i, 2 * j]] - raw[[0, 0, i, j]]).abs() < 1e-6)
    };
    assert!(on_grid(&first_usps("tf1")));
    assert!(!on_grid(&first_usps("centres")));
    let e = serde_saphyr::from_str::<DatasetConfig>("name: digits\nresize: tf2\n").unwrap_err().to_string();
    assert!(e.contains("tf2") && e.contains("tf1"), "{e}");
    let d: dalab_data::digits::DigitsConfig = Default::default();
    assert!(!serde_json::to_string(&d).unwrap().contains("resize"));
    let d = dalab_data::digits::DigitsConfig { resize: dalab_data::formats::images::ResizeGrid::Tf1, ..d };
    assert!(serde_json::to_string(&d).unwrap().contains(r#""resize":"tf1""#));
}

#[test]
fn mnist_m_test_split() {
    let Some(dir) = data_dir() else { return };
    let t = cfg("name: digits\n").load_task("mnist", "mnist-m", &dir).unwrap();
    check(&t.target, &[9001, 3, 32, 32], &[878, 1016, 933, 908, 890, 807, 856, 914, 880, 919]);
    check(&t.source, &[5000, 3, 32, 32], &[500; 10]);
    assert!(t.target_test.is_none());
    // MNIST-M is built from the MNIST test images in order: labels agree with MNIST's first 9001.
    let (_, y) = dalab_data::digits::load_raw("mnist", "test", &dir).unwrap();
    assert_eq!(&y[..9001], t.target.y.as_slice());
    // Grey source repeated into 3 identical channels.
    let s = &t.source.dense_x().unwrap();
    assert_eq!(s.index_axis(ndarray::Axis(1), 0), s.index_axis(ndarray::Axis(1), 2));
}

#[test]
fn jda_digits_and_mnist_train_labels() {
    let Some(dir) = data_dir() else { return };
    let c = cfg("name: jda-digits\n");
    let t = c.load_task("mnist", "usps", &dir).unwrap();
    check(&t.source, &[2000, 256], &[196, 227, 207, 202, 196, 179, 191, 206, 195, 201]);
    check(&t.target, &[1800, 256], &[352, 241, 165, 166, 166, 126, 139, 172, 129, 144]);
    let norms: Vec<f32> =
        t.source.dense_x().unwrap().outer_iter().map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
    let img = cfg("name: jda-digits\nas_image: true\nnormalize: none\n").load_task("usps", "mnist", &dir).unwrap();
    assert_eq!(img.source.dense_x().unwrap().shape(), &[1800, 1, 16, 16]);
    assert!(img.source.dense_x().unwrap().iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(c.load_task("mnist", "mnist", &dir).is_err());
    // MNIST train labels (the images are not in the data directory).
    let p = dir.join("digits/mnist/train-labels-idx1-ubyte.gz");
    let y = dalab_data::formats::idx::read_u8(&p).unwrap();
    let mut h = [0usize; 10];
    y.iter().for_each(|&v| h[v as usize] += 1);
    assert_eq!(h, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
}

#[test]
fn one_nn_reproduces_the_jda_paper() {
    let Some(dir) = data_dir() else { return };
    let rows = jda_table(&dir, &[]).unwrap();
    assert_eq!(rows.len(), 14);
    let got: Vec<String> = rows.iter().map(|r| format!("{}→{} {:.2}", r.source, r.target, r.accuracy)).collect();
    let want: Vec<String> = dalab_data::knn::JDA_NN.iter().map(|(_, s, t, p)| format!("{s}→{t} {p:.2}")).collect();
    assert_eq!(got, want);
    // Without the preprocessing the numbers change (the check pins it).
    let raw = cfg("name: office-caltech10-surf\nnormalize: none\n").load_task("C", "A", &dir).unwrap();
    assert_ne!(format!("{:.2}", one_nn_accuracy(&raw.source, &raw.target).unwrap()), "23.70");
}

#[test]
fn missing_and_corrupt_files_name_file_sha_and_fetch_command() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Missing.
    let e = cfg("name: jda-digits\n").load_task("mnist", "usps", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("MNIST_vs_USPS.mat: file not found"), "{e}");
    assert!(e.contains("2b87e5a793e77826417e6c483e0850d6666c9746717bce2561db43f3f30efd4d"), "{e}");
    assert!(e.contains("dalab data fetch jda-digits"), "{e}");
    // Corrupt with the right size: a .mat with a byte flipped inside its compressed data.
    let rel = "office_caltech10_surf/webcam_SURF_L10.mat";
    let mut b = std::fs::read(dir.join(rel)).unwrap();
    let p = tmp.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    b[200..260].iter_mut().for_each(|v| *v ^= 0x55);
    std::fs::write(&p, &b).unwrap();
    let c = cfg("name: office-caltech10-surf\n");
    let e = match c.load_task("W", "W", tmp.path()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("corrupt file loaded"),
    };
    assert!(e.contains("webcam_SURF_L10.mat") && e.contains("dalab data fetch office-caltech10-surf"), "{e}");
    assert!(e.contains("a6a9c78b4b7181dfbb58bcfd351d4ebd737f171c31247b8884948aa156d3f700"), "{e}");
    // Truncated: caught by the size check before parsing.
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let e = c.load_task("W", "W", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("webcam_SURF_L10.mat") && e.contains("expected 32406"), "{e}");
    // The shared files verify (small dataset only: hashing is slow in debug builds).
    let reports = dalab_data::manifest::verify(&dir, Some("office-caltech10-surf")).unwrap();
    assert!(reports.iter().all(|r| r.state == dalab_data::manifest::FileState::Verified), "{reports:?}");
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving files under `root`, one request per connection, at most
/// `max_requests`, with `Range: bytes=N-` support. Paths in `truncate_once` get half their body (with the
/// full Content-Length) the first time they are asked for. Returns the base URL and the request log.
struct TestServer {
    base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn serve(root: PathBuf, max_requests: usize, truncate_once: Vec<String>) -> TestServer {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut truncate = truncate_once;
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let mut range_start = None;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("range: bytes=") {
                    range_start = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            log2.lock().unwrap().push(format!("{path} {}", range_start.map_or("-".into(), |s| s.to_string())));
            let Ok(body) = std::fs::read(root.join(&path)) else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let (status, from) = match range_start {
                Some(s) if s < body.len() => ("206 Partial Content", s),
                Some(_) => ("416 Range Not Satisfiable", body.len()),
                None => ("200 OK", 0),
            };
            let part = &body[from..];
            let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", part.len());
            if from > 0 {
                head.push_str(&format!("Content-Range: bytes {from}-{}/{}\r\n", body.len() - 1, body.len()));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let cut = truncate.iter().position(|p| *p == path);
            if let Some(i) = cut {
                truncate.remove(i);
                let _ = stream.write_all(&part[..part.len() / 2]);
            } else {
                let _ = stream.write_all(part);
            }
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    TestServer { base, log }
}

/// Every file under `dir` (relative paths), to check that nothing partial was left.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn fetch_from_a_local_server_resumes_and_verifies() {
    use dalab_data::fetch::{FetchOptions, FetchOutcome, fetch, fetch_manifest};
    let Some(shared) = data_dir() else { return };
    let dest = tempfile::tempdir().unwrap();
    let partial = tempfile::tempdir().unwrap();
    let srv = serve(shared.clone(), 40, vec!["office_caltech10_surf/dslr_SURF_L10.mat".into()]);
    let opts = FetchOptions {
        mirror: Some(srv.base.clone()),
        partial_dir: Some(partial.path().to_path_buf()),
        timeout: Some(std::time::Duration::from_secs(10)),
    };
    // 1. A truncated transfer: an error, nothing in the data directory for that file, a partial file kept
    //    outside it.
    let e = fetch("office-caltech10-surf", dest.path(), &opts).unwrap_err().to_string();
    assert!(e.contains("dslr_SURF_L10.mat") && e.contains("interrupted"), "{e}");
    assert!(
        !files_under(dest.path()).iter().any(|f| f.contains("dslr_SURF_L10.mat")),
        "{:?}",
        files_under(dest.path())
    );
    assert_eq!(files_under(partial.path()).len(), 1);
    // 2. Fetching again resumes it with a Range request and completes the dataset.
    let got = fetch("office-caltech10-surf", dest.path(), &opts).unwrap();
    let dslr = got.iter().find(|f| f.path.ends_with("dslr_SURF_L10.mat")).unwrap();
    assert_eq!(dslr.outcome, FetchOutcome::Downloaded { bytes: 18348, resumed_from: 9174 });
    assert!(srv.log.lock().unwrap().iter().any(|l| l == "office_caltech10_surf/dslr_SURF_L10.mat 9174"));
    let reports = dalab_data::manifest::verify(dest.path(), Some("office-caltech10-surf")).unwrap();
    assert!(reports.iter().all(|r| r.state == dalab_data::manifest::FileState::Verified), "{reports:?}");
    assert_eq!(files_under(dest.path()).len(), 9);
    assert!(files_under(partial.path()).is_empty());
    // 3. Everything present: no download at all.
    let n = srv.log.lock().unwrap().len();
    let again = fetch("office-caltech10-surf", dest.path(), &opts).unwrap();
    assert!(again.iter().all(|f| f.outcome == FetchOutcome::Present));
    assert_eq!(srv.log.lock().unwrap().len(), n);
    // 4. A wrong checksum: error naming both digests, nothing left anywhere.
    let mut m = dalab_data::manifest::find("jda-digits").unwrap().clone();
    m.files.truncate(1);
    m.files[0].sha256 = "0".repeat(64);
    let dest2 = tempfile::tempdir().unwrap();
    let e = fetch_manifest(&m, dest2.path(), &opts).unwrap_err().to_string();
    assert!(e.contains("SHA-256 mismatch") && e.contains(&"0".repeat(64)) && e.contains("2b87e5a793e77826"), "{e}");
    assert!(files_under(dest2.path()).is_empty() && files_under(partial.path()).is_empty());
    // 5. A file the server does not have: HTTP 404, nothing left.
    m.files[0].path = "nope/missing.mat".into();
    let e = fetch_manifest(&m, dest2.path(), &opts).unwrap_err().to_string();
    assert!(e.contains("HTTP status 404") && e.contains("nope/missing.mat"), "{e}");
    assert!(files_under(dest2.path()).is_empty());
}

#[test]
fn usps_from_hdf5_alone_equals_the_npy_copies() {
    let Some(dir) = data_dir() else { return };
    // A data directory holding only usps.h5 (what `dalab data fetch usps` gives).
    let tmp = tempfile::tempdir().unwrap();
    let h5 = tmp.path().join("digits/usps/usps.h5");
    std::fs::create_dir_all(h5.parent().unwrap()).unwrap();
    std::fs::copy(dir.join("digits/usps/usps.h5"), &h5).unwrap();
    for split in ["train", "test"] {
        let (xh, yh) = dalab_data::digits::load_raw("usps", split, tmp.path()).unwrap();
        let (xn, yn) = dalab_data::digits::load_raw("usps", split, &dir).unwrap();
        assert_eq!(yh, yn, "{split}");
        assert_eq!(xh, xn, "{split}");
    }
    let reports = dalab_data::manifest::verify(tmp.path(), Some("usps")).unwrap();
    assert!(reports.iter().all(|r| r.state.is_ok()), "{reports:?}");
    assert_eq!(reports.iter().filter(|r| r.state == dalab_data::manifest::FileState::OptionalMissing).count(), 4);
    let m = dalab_data::features::read_matrix(&h5, Some("test/data")).unwrap();
    assert_eq!(m.shape(), &[2007, 256]);
    let e = dalab_data::features::read_matrix(&h5, None).unwrap_err().to_string();
    assert!(e.contains("usps.h5: an HDF5 file needs the dataset's path as key"), "{e}");
    let e = dalab_data::formats::hdf5::read_dataset(&h5, "train/labels").unwrap_err().to_string();
    assert!(e.contains("usps.h5: train/labels: no object `labels` in the group (has: data, target)"), "{e}");
}

/// A miniature of benchmark `b` under `data/<root>`: for the first two domains (or all when `all`), one 4×4 PNG per
/// class in its class folder (`<domain folder>/<class>/<class>_0.png`), and the image lists of both layouts'
/// kinds (`<list>` and `<test_list>`, `path label` lines, labels indexing the benchmark's classes).
fn write_benchmark_miniature(b: &dalab_data::benchmarks::Benchmark, data: &Path, domains: usize) {
    use dalab_data::formats::images::{Image, encode_png};
    let root = data.join(&b.root);
    for (di, d) in b.domains.iter().take(domains).enumerate() {
        let mut lines = String::new();
        for (k, class) in b.classes.iter().enumerate() {
            let dir = root.join(&d.folder).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            let v = ((k * 7 + di * 50) % 256) as u8;
            let img = Image { width: 4, height: 4, channels: 3, data: vec![v; 48] };
            std::fs::write(dir.join(format!("{class}_0.png")), encode_png(&img)).unwrap();
            lines.push_str(&format!("{}/{class}/{class}_0.png {k}\n", d.folder));
        }
        for list in std::iter::once(&d.list).chain(d.test_list.as_ref()) {
            let p = root.join(list);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &lines).unwrap();
        }
    }
}

/// Each image benchmark loads from a generated miniature of its layout: classes in the benchmark's order (the
/// lists' numbering, not the folders' byte order: Office-Home's is not alphabetical), the same labels from the
/// folders and from the lists, DomainNet's test lists as the target test set, and a missing class folder or an
/// out-of-range list label is an error naming the file.
#[test]
fn image_benchmarks_load_from_miniatures_of_both_layouts() {
    for b in dalab_data::benchmarks::all() {
        let tmp = tempfile::tempdir().unwrap();
        write_benchmark_miniature(b, tmp.path(), 2);
        let (s, t) = (&b.domains[0].key, &b.domains[1].key);
        let load = |layout: &str| {
            cfg(&format!("name: {}\nimage: {{size: [4, 4]}}\nlayout: {layout}\n", b.name)).load_task(s, t, tmp.path())
        };
        let folders = load("folders").unwrap_or_else(|e| panic!("{}: {e}", b.name));
        let lists = load("lists").unwrap_or_else(|e| panic!("{}: {e}", b.name));
        let n = b.classes.len();
        assert_eq!(folders.source.class_names, b.classes, "{}", b.name);
        assert_eq!(folders.source.len(), n);
        // The folders' labels are the classes' positions in the benchmark's list, as the image lists number them.
        let mut by_folder: Vec<i64> = folders.source.y.clone();
        by_folder.sort();
        assert_eq!(by_folder, (0..n as i64).collect::<Vec<_>>());
        // The same image gets the same label either way: (label, pixels) pairs, sorted by label.
        let pairs = |t: &dalab_data::TaskData| {
            let x = t.source.x.to_dense().unwrap();
            let mut v: Vec<(i64, Vec<f32>)> =
                t.source.y.iter().zip(x.outer_iter()).map(|(y, x)| (*y, x.iter().copied().collect())).collect();
            v.sort_by_key(|p| p.0);
            v
        };
        let (pairs_f, pairs_l) = (pairs(&folders), pairs(&lists));
        assert!(pairs_f == pairs_l, "{}: folders and lists label the same images differently", b.name);
        assert_eq!(lists.target_test.is_some(), b.domains[1].test_list.is_some(), "{}", b.name);
        if b.name == "office-home" {
            let backpack = b.classes.iter().position(|c| c == "Backpack").unwrap();
            assert_eq!(backpack, 32, "TLlib's order");
        }
    }
    // A class folder missing: an incomplete download, named.
    let b = dalab_data::benchmarks::find("office31").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_benchmark_miniature(b, tmp.path(), 2);
    std::fs::remove_dir_all(tmp.path().join("office31/amazon/images/bike")).unwrap();
    let e = cfg("name: office31\nimage: {size: [4, 4]}\n").load_task("A", "D", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("amazon/images") && e.contains("1 of the 31 class folders are missing (e.g. bike)"), "{e}");
    // A list label beyond the classes.
    std::fs::write(tmp.path().join("office31/image_list/dslr.txt"), "dslr/images/bike/bike_0.png 31\n").unwrap();
    let e = cfg("name: office31\nlayout: lists\n").load_task("D", "A", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("dslr.txt") && e.contains("label 31 is not below the 31 classes"), "{e}");
    // Nothing there: the fetch command.
    let empty = tempfile::tempdir().unwrap();
    let e = cfg("name: visda2017\n").load_task("Synthetic", "Real", empty.path()).unwrap_err().to_string();
    assert!(e.contains("`dalab data fetch visda2017`"), "{e}");
    let e = cfg("name: office31\n").check_task("A", "X").unwrap_err();
    assert_eq!(e, "dataset `office31` has no domain `X` (domains: A, D, W)");
}

/// `dalab data fetch office31` against a local mirror: the archives (gzipped tars for the domains, a zip for the
/// lists) are downloaded, extracted into place and recorded with their SHA-256; a second fetch downloads nothing;
/// an archive with an entry leaving the folder is refused and leaves nothing behind.
#[test]
fn image_benchmark_fetch_extracts_records_and_refuses_escaping_archives() {
    use dalab_data::benchmarks::{ArchiveOutcome, fetch};
    let b = dalab_data::benchmarks::find("office31").unwrap();
    let src = tempfile::tempdir().unwrap();
    write_benchmark_miniature(b, src.path(), 3);
    let mirror = tempfile::tempdir().unwrap();
    let root = src.path().join("office31");
    for dom in ["amazon", "dslr", "webcam"] {
        let f = std::fs::File::create(mirror.path().join(format!("{dom}.tgz"))).unwrap();
        let mut t = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
        t.append_dir_all(dom, root.join(dom)).unwrap();
        t.into_inner().unwrap().finish().unwrap();
    }
    {
        let f = std::fs::File::create(mirror.path().join("image_list.zip")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for dom in ["amazon", "dslr", "webcam"] {
            z.start_file(format!("image_list/{dom}.txt"), zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut z, &std::fs::read(root.join(format!("image_list/{dom}.txt"))).unwrap())
                .unwrap();
        }
        z.finish().unwrap();
    }
    let srv = serve(mirror.path().to_path_buf(), 20, vec![]);
    let partial = tempfile::tempdir().unwrap();
    let opts = dalab_data::fetch::FetchOptions {
        mirror: Some(srv.base.clone()),
        partial_dir: Some(partial.path().to_path_buf()),
        timeout: Some(std::time::Duration::from_secs(10)),
    };
    let data = tempfile::tempdir().unwrap();
    let got = fetch("office31", data.path(), &opts).unwrap();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|(_, o)| matches!(o, ArchiveOutcome::Extracted { .. })), "{got:?}");
    let fetched = std::fs::read_to_string(data.path().join("office31/FETCHED.yaml")).unwrap();
    let sha = dalab_data::manifest::sha256_file(&mirror.path().join("dslr.tgz")).unwrap();
    assert!(fetched.contains("file: dslr.tgz") && fetched.contains(&sha), "{fetched}");
    let t = cfg("name: office31\nimage: {size: [4, 4]}\n").load_task("W", "A", data.path()).unwrap();
    assert_eq!((t.source.len(), t.target.len()), (31, 31));
    let t = cfg("name: office31\nimage: {size: [4, 4]}\nlayout: lists\n").load_task("W", "A", data.path()).unwrap();
    assert_eq!(t.source.len(), 31);
    assert!(files_under(partial.path()).is_empty(), "no download left behind");
    let n = srv.log.lock().unwrap().len();
    let again = fetch("office31", data.path(), &opts).unwrap();
    assert!(again.iter().all(|(_, o)| *o == ArchiveOutcome::Present));
    assert_eq!(srv.log.lock().unwrap().len(), n, "nothing downloaded again");
    // An archive whose entry climbs out of the extraction folder.
    let evil = mirror.path().join("evil.tar");
    {
        let mut t = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        // Written as raw bytes: the builder itself refuses such a path.
        h.as_old_mut().name[..12].copy_from_slice(b"../escape.tx");
        h.set_cksum();
        t.append(&h, &b"bad"[..]).unwrap();
        t.finish().unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let e = dalab_data::benchmarks::extract(&evil, &out.path().join("x")).unwrap_err().to_string();
    assert!(e.contains("evil.tar") && e.contains("leaves the extraction folder"), "{e}");
    assert!(!out.path().join("escape.tx").exists());
}
