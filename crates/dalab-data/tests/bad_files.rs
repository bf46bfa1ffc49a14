//! The corrupt-file corpus: every reader of the data layer (npy, npz, MAT v5, svmlight, idx, CSV, PNG-in-tar, the
//! feature-files dataset) on damaged inputs. The files are generated here (this file is the committed generator):
//! valid files written by the crate's own writers, then truncated, mutated or edited. Each case must give an error
//! naming the file with the expected fragment, and never panic.

use dalab_data::formats::{idx, mat, npy, png_tar, svmlight, text};
use ndarray::{Array2, ArrayD, array};
use std::path::Path;

type Reader = fn(&Path) -> Result<(), String>;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    read: Reader,
    /// Expected fragment of the one-line message (besides the file name, which every message must carry).
    fragment: &'static str,
}

fn npy_read(p: &Path) -> Result<(), String> {
    npy::read_npy(p).map(drop).map_err(|e| e.to_string())
}

fn matrix_read(p: &Path) -> Result<(), String> {
    dalab_data::features::read_matrix(p, None).map(drop).map_err(|e| e.to_string())
}

fn mat_read(p: &Path) -> Result<(), String> {
    mat::MatFile::open(p).and_then(|m| m.matrix(Some("X")).map(drop)).map_err(|e| e.to_string())
}

fn svm_read(p: &Path) -> Result<(), String> {
    svmlight::read(p, svmlight::IndexBase::One, Some(4)).map(drop).map_err(|e| e.to_string())
}

fn idx_read(p: &Path) -> Result<(), String> {
    idx::read(p).map(drop).map_err(|e| e.to_string())
}

fn csv_read(p: &Path) -> Result<(), String> {
    text::read(p, None, None).map(drop).map_err(|e| e.to_string())
}

fn tar_read(p: &Path) -> Result<(), String> {
    png_tar::read(p, "images", "labels.txt").map(drop).map_err(|e| e.to_string())
}

fn npy_bytes() -> Vec<u8> {
    npy::npy_bytes(&array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn(), false)
}

fn with(mut b: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    f(&mut b);
    b
}

/// `b` with the first occurrence of `from` replaced by `to` (same length, so the header stays aligned).
fn replace(b: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let i = b.windows(from.len()).position(|w| w == from.as_bytes()).unwrap_or_else(|| panic!("no `{from}`"));
    let mut out = b.to_vec();
    out[i..i + to.len()].copy_from_slice(to.as_bytes());
    out
}

fn mat_bytes(dir: &Path, compress: bool) -> Vec<u8> {
    let p = dir.join(format!("src{compress}.mat"));
    let x: Array2<f64> = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
    mat::write(&p, &[("X", &x, mat::WriteClass::Double)], compress).unwrap();
    std::fs::read(p).unwrap()
}

/// A well-formed (checksummed) `.npz` holding `npy` as its one member `fts`.
fn npz_of(npy: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("fts.npy", zip::write::SimpleFileOptions::default()).unwrap();
    w.write_all(npy).unwrap();
    w.finish().unwrap().into_inner()
}

fn npz_bytes(dir: &Path) -> Vec<u8> {
    let p = dir.join("src.npz");
    npy::write_npz(&p, &[("fts", &array![[1.0, 2.0], [3.0, 4.0]].into_dyn())], false).unwrap();
    std::fs::read(p).unwrap()
}

fn idx_bytes(dir: &Path) -> Vec<u8> {
    let p = dir.join("src.idx");
    idx::write_u8(&p, &ArrayD::from_shape_vec(vec![2, 2, 2], (0..8).collect()).unwrap()).unwrap();
    std::fs::read(p).unwrap()
}

fn tar_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn png() -> Vec<u8> {
    dalab_data::formats::images::encode_png(&dalab_data::formats::images::Image {
        width: 2,
        height: 2,
        channels: 1,
        data: vec![0, 64, 128, 255],
    })
}

fn cases(dir: &Path) -> Vec<Case> {
    let npy = npy_bytes();
    let header_end = npy.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mat = mat_bytes(dir, false);
    let matz = mat_bytes(dir, true);
    let npz = npz_bytes(dir);
    let idxb = idx_bytes(dir);
    let good_tar = tar_bytes(&[("images/a.png", &png()), ("labels.txt", b"a.png 1\n")]);
    let c = |name, bytes, read: Reader, fragment| Case { name, bytes, read, fragment };
    vec![
        // npy
        c("empty.npy", vec![], npy_read, "not a .npy file"),
        c("bad_magic.npy", with(npy.clone(), |b| b[1] = b'X'), npy_read, "not a .npy file"),
        c("bad_version.npy", with(npy.clone(), |b| b[6] = 9), npy_read, "version"),
        c("header_cut.npy", npy[..20].to_vec(), npy_read, "truncated"),
        c("data_cut.npy", npy[..npy.len() - 5].to_vec(), npy_read, "needs 48 bytes, file has 43"),
        c(
            "extra_bytes.npy",
            with(npy.clone(), |b| b.extend_from_slice(&[0; 8])),
            npy_read,
            "corrupt header or extra data",
        ),
        c("dtype_unknown.npy", replace(&npy, "<f8", "<c8"), npy_read, "dtype"),
        c("dtype_object.npy", replace(&npy, "<f8", "|O8"), npy_read, "dtype"),
        c("shape_garbage.npy", replace(&npy, "(2, 3)", "(2, x)"), npy_read, "bad shape"),
        c("shape_too_big.npy", replace(&npy, "(2, 3)", "(9, 9)"), npy_read, "needs 648 bytes"),
        c("fortran_flag_garbage.npy", replace(&npy, "False", "Maybe"), npy_read, "fortran_order"),
        c("header_not_dict.npy", with(npy.clone(), |b| b[10] = b'['), npy_read, "header"),
        // 27 nested brackets: npyz's PEG header parser backtracks exponentially on these (docs/datasets.md).
        c(
            "header_nested.npy",
            replace(&npy, "{'descr': '<f8', 'fortran_o", "[[[[[[[[[[[[[[[[[[[[[[[[[[["),
            npy_read,
            "header",
        ),
        c("header_not_utf8.npy", with(npy.clone(), |b| b[header_end - 3] = 0xff), npy_read, "header"),
        // npz
        c("npz_cut.npz", npz[..npz.len() / 2].to_vec(), matrix_read, "zip"),
        c("npz_not_zip.npz", b"PK\x03\x04 nonsense".to_vec(), matrix_read, "zip"),
        c("npz_member_corrupt.npz", replace(&npz, "<f8", "<c8"), matrix_read, "checksum"),
        c(
            "npz_member_dtype.npz",
            npz_of(&replace(&npy, "<f8", "<c8")),
            matrix_read,
            "member `fts.npy`: unsupported dtype \"<c8\"",
        ),
        // MAT v5
        c("mat_empty.mat", vec![], mat_read, "MAT"),
        c("mat_header_cut.mat", mat[..100].to_vec(), mat_read, "MAT"),
        c("mat_data_cut.mat", mat[..mat.len() - 9].to_vec(), mat_read, "truncated"),
        c("mat_endian_garbage.mat", with(mat.clone(), |b| b[126] = b'Z'), mat_read, "endian"),
        c("mat_compressed_cut.mat", matz[..matz.len() - 6].to_vec(), mat_read, "truncated"),
        c("mat_compressed_garbage.mat", with(matz.clone(), |b| b.truncate(128 + 8)), mat_read, "0 left"),
        c(
            "mat_v73_hdf5.mat",
            with(vec![0; 200], |b| b[..19].copy_from_slice(b"MATLAB 7.3 MAT-file")),
            mat_read,
            "not a MAT v5 file",
        ),
        // svmlight
        c("svm_bad_label.svm", b"x 1:0.5\n".to_vec(), svm_read, ":1:"),
        c("svm_bad_pair.svm", b"1 1:0.5 2\n".to_vec(), svm_read, ":1:"),
        c("svm_bad_value.svm", b"1 1:0.5\n-1 2:abc\n".to_vec(), svm_read, ":2:"),
        c("svm_index_zero.svm", b"1 0:0.5\n".to_vec(), svm_read, ":1:"),
        c("svm_index_too_big.svm", b"1 9:0.5\n".to_vec(), svm_read, ":1:"),
        c(
            "svm_index_huge.svm",
            b"1 1:0.5\n1 4000000000:1\n".to_vec(),
            |p| svmlight::read(p, svmlight::IndexBase::One, None).map(drop).map_err(|e| e.to_string()),
            "implies more than 16777216 features",
        ),
        c("svm_not_utf8.svm", b"1 1:0.5\n\xff\xfe 2:1\n".to_vec(), svm_read, "not UTF-8"),
        // idx
        c("idx_empty.idx", vec![], idx_read, "idx"),
        c("idx_bad_magic.idx", with(idxb.clone(), |b| b[0] = 7), idx_read, "magic"),
        c("idx_bad_type.idx", with(idxb.clone(), |b| b[2] = 0x42), idx_read, "type"),
        c("idx_data_cut.idx", idxb[..idxb.len() - 3].to_vec(), idx_read, "needs 8 bytes, file has 5"),
        c("idx_dims_cut.idx", idxb[..6].to_vec(), idx_read, "truncated idx header"),
        // A zero length beside huge ones (found by the fuzz run: ndarray refused the shape, the reader panicked).
        c(
            "idx_zero_and_huge_dims.idx",
            vec![0, 0, 8, 3, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255],
            idx_read,
            "too large",
        ),
        // CSV
        c("csv_ragged.csv", b"1,2,3\n4,5\n".to_vec(), csv_read, ":2:"),
        c("csv_not_a_number.csv", b"1,2\n3,x\n".to_vec(), csv_read, ":2:"),
        c("csv_empty.csv", b"".to_vec(), csv_read, "no data rows"),
        // PNG-in-tar
        c("tar_cut.tar", good_tar[..700].to_vec(), tar_read, "tar"),
        c("tar_no_labels.tar", tar_bytes(&[("images/a.png", &png())]), tar_read, "labels.txt"),
        c("tar_label_missing_file.tar", tar_bytes(&[("labels.txt", b"b.png 1\n")]), tar_read, "b.png"),
        c(
            "tar_bad_png.tar",
            tar_bytes(&[("images/a.png", b"\x89PNG\r\n\x1a\nxx"), ("labels.txt", b"a.png 1\n")]),
            tar_read,
            "a.png",
        ),
        c(
            "tar_bad_label.tar",
            tar_bytes(&[("images/a.png", &png()), ("labels.txt", b"a.png one\n")]),
            tar_read,
            "label",
        ),
        c(
            "tgz_cut.tgz",
            {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&good_tar).unwrap();
                let b = gz.finish().unwrap();
                b[..b.len() - 10].to_vec()
            },
            tar_read,
            "gzip",
        ),
    ]
}

#[test]
fn every_corrupt_file_is_an_error_naming_it_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let cases = cases(src.path());
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let path = dir.path().join(case.name);
        std::fs::write(&path, &case.bytes).unwrap();
        let got = std::panic::catch_unwind(|| (case.read)(&path));
        match got {
            Err(_) => failures.push(format!("{}: panicked", case.name)),
            Ok(Ok(())) => failures.push(format!("{}: accepted", case.name)),
            Ok(Err(msg)) => {
                if std::env::var_os("DALAB_PRINT_CORPUS").is_some() {
                    eprintln!("{}\t{msg}", case.name);
                }
                if !msg.contains(case.name) || !msg.contains(case.fragment) || msg.lines().count() != 1 {
                    failures.push(format!("{}: `{msg}` lacks the file name or `{}`", case.name, case.fragment));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// A bounded fuzz run of every reader: 300 seeded random mutations (bit flips, byte overwrites, truncations,
/// insertions, duplicated spans) of a valid file per format, each read once. None may panic; each is either read
/// or refused with a message naming the file. The readers check every size a file claims against the bytes it has
/// before allocating (the tar reader caps a member's buffer at 16 MiB, svmlight an inferred width at 2^24), so no
/// input asks for more memory than a small multiple of its own size. `DALAB_FUZZ_CASES` raises the count (the
/// local run of `DALAB_FUZZ_CASES=200000`: see docs/datasets.md).
#[test]
fn fuzzed_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let cases: usize = std::env::var("DALAB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let src = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = src.path();
    let tar = tar_bytes(&[("images/a.png", &png()), ("labels.txt", b"a.png 1\n")]);
    let seeds: Vec<(&str, Vec<u8>, Reader)> = vec![
        ("f.npy", npy_bytes(), npy_read),
        ("f.npz", npz_bytes(d), matrix_read),
        ("f.mat", mat_bytes(d, false), mat_read),
        ("fz.mat", mat_bytes(d, true), mat_read),
        ("f.svm", b"1 1:0.5 3:2\n-1 2:1.5 4:-1\n".to_vec(), svm_read),
        ("f.idx", idx_bytes(d), idx_read),
        ("f.csv", b"a,b,c\n1,2,3\n4.5,-5,6e2\n".to_vec(), csv_read),
        ("f.tar", tar, tar_read),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261201);
    let mut panics = Vec::new();
    for (name, good, read) in &seeds {
        for i in 0..cases {
            let mut b = good.clone();
            for _ in 0..rng.random_range(1..4) {
                let n = b.len().max(1);
                match rng.random_range(0..5) {
                    0 if !b.is_empty() => {
                        let j = rng.random_range(0..b.len());
                        b[j] ^= 1 << rng.random_range(0..8);
                    }
                    1 if !b.is_empty() => {
                        let j = rng.random_range(0..b.len());
                        b[j] = rng.random();
                    }
                    2 => b.truncate(rng.random_range(0..n)),
                    3 => {
                        let j = rng.random_range(0..=b.len());
                        b.insert(j, rng.random());
                    }
                    _ if !b.is_empty() => {
                        let (j, k) = (rng.random_range(0..b.len()), rng.random_range(0..b.len()));
                        let (lo, hi) = (j.min(k), j.max(k).min(j.min(k) + 64));
                        let span = b[lo..hi].to_vec();
                        b.splice(lo..lo, span);
                    }
                    _ => {}
                }
            }
            let path = dir.path().join(name);
            std::fs::write(&path, &b).unwrap();
            match std::panic::catch_unwind(|| read(&path)) {
                Err(_) => panics.push(format!("{name} case {i} ({} bytes)", b.len())),
                Ok(Err(msg)) if !msg.contains(name) => panics.push(format!("{name} case {i}: `{msg}` lacks the file")),
                Ok(_) => {}
            }
        }
    }
    assert!(panics.is_empty(), "{}", panics.join("\n"));
}
