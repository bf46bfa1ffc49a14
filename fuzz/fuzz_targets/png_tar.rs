#![no_main]
// PNGs in a tar(.gz) with a `file label` list (the MNIST-M layout): members, list and every image decoded.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dalab_data::formats::png_tar::read(&dalab_data_fuzz::scratch("tar", data), "images", "labels.txt");
});
