#![no_main]
// `.npz` (the zip crate, members by dalab's `.npy` reader), through the feature-file reader a user's YAML reaches.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dalab_data::formats::npy::Npz::open_bytes(std::path::Path::new("f.npz"), data);
    let _ = dalab_data::features::read_matrix(&dalab_data_fuzz::scratch("npz", data), None);
});
