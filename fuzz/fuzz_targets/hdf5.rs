#![no_main]
// HDF5 (dalab's reader): the datasets of the seed file and the root.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = dalab_data::formats::hdf5::H5File::from_bytes(std::path::Path::new("f.h5"), data.to_vec()) {
        for name in ["x", "g/y", "g/z", "train/data", "/"] {
            let _ = f.dataset(name);
        }
    }
});
