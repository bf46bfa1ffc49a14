#![no_main]
// idx (MNIST), plain or gzipped, as bytes and as f64.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = dalab_data_fuzz::scratch("idx", data);
    let _ = dalab_data::formats::idx::read_u8(&p);
    let _ = dalab_data::formats::idx::read(&p);
});
