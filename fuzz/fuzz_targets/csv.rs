#![no_main]
// Delimited numeric text (csv crate + dalab's number parsing), each delimiter, header detected or not.
use dalab_data::formats::text::{Delimiter, parse};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = std::path::Path::new("f.csv");
    for d in [Delimiter::Char(b','), Delimiter::Char(b'\t'), Delimiter::Whitespace] {
        let _ = parse(p, data, d, None);
        let _ = parse(p, data, d, Some(false));
    }
});
