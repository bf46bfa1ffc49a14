//! The `dalab` command line. Only this crate prints.

use dalab_core::Registry;

/// The registry of every method crate: one line per crate under `crates/methods/`.
/// (A test fails when a crate there is not registered.)
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.add::<dalab_source_only::SourceOnly>();
    r.add::<dalab_dann::Dann>();
    r.add::<dalab_dan::Dan>();
    r.add::<dalab_rtn::Rtn>();
    r.add::<dalab_deep_coral::DeepCoral>();
    r.add::<dalab_jan::Jan>();
    r.add::<dalab_cdan::Cdan>();
    r.add::<dalab_mcc::Mcc>();
    r.add::<dalab_coral::Coral>();
    r.add::<dalab_mcd::Mcd>();
    r.add::<dalab_adda::Adda>();
    r.add::<dalab_entmin::EntMin>();
    r.add::<dalab_shot::Shot>();
    r.add::<dalab_mean_teacher::MeanTeacher>();
    r.add::<dalab_bsp::Bsp>();
    r.add::<dalab_afn::Afn>();
    r.add::<dalab_mdd::Mdd>();
    r.add::<dalab_target_only::TargetOnly>();
    r.add::<dalab_layer_transfer::LayerTransfer>();
    r.add::<dalab_mtl::Mtl>();
    r.add::<dalab_progressive::Progressive>();
    r.add_classic::<dalab_svm::Svm>();
    r.add_classic::<dalab_coral_svm::CoralSvm>();
    r.add_classic::<dalab_1nn::OneNn>();
    r
}

/// Mean and (sample) standard deviation, in percent, as `mean ± std` (just `mean` for one value).
pub fn mean_std(values: &[f64]) -> String {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return format!("{:.1}", 100.0 * mean);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * var.sqrt())
}

/// The time left when `pos` of `len` steps are counted after `elapsed` seconds, `skipped` of them for trials done
/// before this session: the steps left at the rate of the steps worked now. None before any step is worked.
pub fn eta_seconds(elapsed: f64, pos: u64, len: u64, skipped: u64) -> Option<f64> {
    let worked = pos.saturating_sub(skipped);
    (worked > 0).then(|| elapsed * len.saturating_sub(pos) as f64 / worked as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_crate_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../methods");
        let names = registry().names();
        let mut crates = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if !entry.path().join("Cargo.toml").exists() {
                continue;
            }
            let dir_name = entry.file_name().into_string().unwrap();
            let method = dir_name.strip_prefix("dalab-").expect("method crates are named dalab-<method>");
            assert!(names.contains(&method), "crate {dir_name} is not registered in dalab_cli::registry()");
            crates += 1;
        }
        assert_eq!(crates, names.len(), "registry has methods without a crate under crates/methods/");
    }

    #[test]
    fn the_overall_eta_counts_only_the_steps_worked_in_this_session() {
        // Nothing worked yet (only skipped trials): no estimate rather than zero.
        assert_eq!(eta_seconds(10.0, 0, 1000, 0), None);
        assert_eq!(eta_seconds(10.0, 300, 1000, 300), None);
        // 200 steps in 10 s, 800 left: 40 s.
        assert_eq!(eta_seconds(10.0, 200, 1000, 0), Some(40.0));
        // 300 steps counted, 200 of them trials finished before: 100 worked in 10 s, 700 left → 70 s, not 23 s.
        assert_eq!(eta_seconds(10.0, 300, 1000, 200), Some(70.0));
        assert_eq!(eta_seconds(10.0, 1000, 1000, 0), Some(0.0));
    }

    #[test]
    fn mean_std_formats() {
        assert_eq!(mean_std(&[0.5]), "50.0");
        // Sample std of {0.8, 0.9} is 0.0707106... -> 7.1 points.
        assert_eq!(mean_std(&[0.8, 0.9]), "85.0 ± 7.1");
    }
}
