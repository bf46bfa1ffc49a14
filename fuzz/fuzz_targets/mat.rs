#![no_main]
// MAT v5 (dalab's reader), compressed or not: parse, then every variable as a matrix.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dalab_data::formats::mat::MatFile::parse(std::path::Path::new("f.mat"), data) {
        for v in &m.vars {
            let _ = m.matrix(Some(&v.name));
            let _ = m.vector(&v.name);
        }
        let _ = m.matrix(None);
    }
});
