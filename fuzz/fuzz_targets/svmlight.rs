#![no_main]
// svmlight text, both index bases, with and without a declared width.
use dalab_data::formats::svmlight::{IndexBase, parse};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let p = std::path::Path::new("f.svm");
    for base in [IndexBase::One, IndexBase::Zero] {
        let _ = parse(p, data, base, None);
        let _ = parse(p, data, base, Some(8));
    }
});
