#![no_main]
// `.npy` (dalab's reader): any bytes, parsed, and read as a file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dalab_data::formats::npy::parse_npy(data);
    let _ = dalab_data::formats::npy::read_npy(&dalab_data_fuzz::scratch("npy", data));
});
