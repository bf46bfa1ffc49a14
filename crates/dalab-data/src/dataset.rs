use crate::moons::MoonsConfig;
use crate::{Error, Result, TaskData};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetConfig {
    Moons(MoonsConfig),
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig::Moons(MoonsConfig::default())
    }
}

impl DatasetConfig {
    pub fn name(&self) -> &'static str {
        "moons"
    }
    pub fn domains(&self) -> Vec<String> {
        vec!["moons".into(), "moons-rotated".into()]
    }
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            DatasetConfig::Moons(c) => c.validate(),
        }
    }
    pub fn load_task(&self, source: &str, target: &str, _data_dir: &Path) -> Result<TaskData> {
        match self {
            DatasetConfig::Moons(c) => {
                if (source, target) != ("moons", "moons-rotated") {
                    return Err(Error::Invalid(format!("moons: no task {source}→{target}")));
                }
                crate::moons::task(c)
            }
        }
    }
}
