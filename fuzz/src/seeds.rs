//! Writes a seed corpus for every target into `corpus/<target>/` (small valid files made by dalab-data's writers and
//! the tar crate; HDF5 seeds come from h5py in `run.sh`). Usage: `cargo run --example seeds` from `fuzz/`.

use dalab_data::formats::{idx, images, mat, npy, svmlight};
use ndarray::{Array2, array};
use std::path::Path;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}

fn file(target: &str, name: &str, write: impl FnOnce(&Path)) {
    let p = std::env::temp_dir().join(format!("dalab-seed-{name}"));
    write(&p);
    put(target, name, &std::fs::read(&p).expect("seed readable"));
}

fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("tar member");
    }
    b.into_inner().expect("tar")
}

fn main() {
    let x: Array2<f64> = array![[1.0, 2.5, -3.0], [4.0, 5.0, 6.0]];
    let y = array![1.0, 0.0].into_dyn();
    put("npy", "f64.npy", &npy::npy_bytes(&x.clone().into_dyn(), false));
    put("npy", "f32.npy", &npy::npy_bytes(&x.clone().into_dyn(), true));
    put("npy", "y.npy", &npy::npy_bytes(&y, false));
    for compress in [false, true] {
        file("npz", &format!("xy{compress}.npz"), |p| {
            npy::write_npz(p, &[("x", &x.clone().into_dyn()), ("y", &y)], compress).expect("npz")
        });
        file("mat", &format!("x{compress}.mat"), |p| {
            let labels = array![[1.0], [2.0]];
            mat::write(p, &[("X", &x, mat::WriteClass::Double), ("Y", &labels, mat::WriteClass::Uint8)], compress)
                .expect("mat")
        });
    }
    for (base, name) in [(svmlight::IndexBase::Zero, "zero.svm"), (svmlight::IndexBase::One, "one.svm")] {
        file("svmlight", name, |p| svmlight::write(p, &x, &[1.0, -1.0], base).expect("svmlight"));
    }
    file("idx", "u8.idx", |p| {
        idx::write_u8(p, &ndarray::Array3::<u8>::from_elem((2, 3, 3), 7).into_dyn()).expect("idx")
    });
    let png = images::encode_png(&images::Image { width: 2, height: 2, channels: 1, data: vec![0, 64, 128, 255] });
    put(
        "png_tar",
        "two.tar",
        &tar(&[("images/a.png", &png), ("images/b.png", &png), ("labels.txt", b"a.png 1\nb.png 0\n")]),
    );
    put("csv", "header.csv", b"a,b,c\n1,2,3\n4.5,-5,6e2\n");
    put("csv", "quoted.csv", b"\"1.5\",\"2\"\r\n3,4\r\n");
    put("csv", "space.txt", b"1 2  3\n\n4\t5 6\n");
}
