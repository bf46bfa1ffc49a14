//! TensorBoard's hparams plugin records (`tensorboard/plugins/hparams/plugin_data.proto` and `api.proto`;
//! field numbers checked against the descriptors of the `tensorboard` 2.20 package).
//!
//! - the experiment summary (`_hparams_/experiment`), written once in the log-dir root: which hyperparameters and
//!   which metrics (scalar tags) the HParams dashboard shows;
//! - per run (one trial), `_hparams_/session_start_info` with the run's hyperparameter values and
//!   `_hparams_/session_end_info` with its status.

use crate::{EventWriter, Result};
use prost::Message;

pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";
const PLUGIN: &str = "hparams";

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(oneof = "plugin_data::Data", tags = "2, 3, 4")]
    pub data: Option<plugin_data::Data>,
}

pub mod plugin_data {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "2")]
        Experiment(super::Experiment),
        #[prost(message, tag = "3")]
        SessionStartInfo(super::SessionStartInfo),
        #[prost(message, tag = "4")]
        SessionEndInfo(super::SessionEndInfo),
    }
}

/// `tensorboard.hparams.Experiment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Experiment {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(double, tag = "3")]
    pub time_created_secs: f64,
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
    #[prost(string, tag = "6")]
    pub name: String,
}

/// `tensorboard.hparams.HParamInfo` (DataType: 1 string, 2 bool, 3 float64).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub display_name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(int32, tag = "4")]
    pub r#type: i32,
    #[prost(message, optional, tag = "5")]
    pub domain_discrete: Option<ListValue>,
}

/// `tensorboard.hparams.MetricInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(int32, tag = "5")]
    pub dataset_type: i32,
}

/// `tensorboard.hparams.MetricName`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricName {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    #[prost(map = "string, message", tag = "1")]
    pub hparams: std::collections::HashMap<String, Value>,
    #[prost(string, tag = "4")]
    pub group_name: String,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo` (status: 1 success, 2 failure, 3 running).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value` (the kinds we use).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(oneof = "value::Kind", tags = "2, 3, 4")]
    pub kind: Option<value::Kind>,
}

pub mod value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(double, tag = "2")]
        NumberValue(f64),
        #[prost(string, tag = "3")]
        StringValue(String),
        #[prost(bool, tag = "4")]
        BoolValue(bool),
    }
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// A hyperparameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum HValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl HValue {
    fn proto(&self) -> Value {
        Value {
            kind: Some(match self {
                HValue::Number(x) => value::Kind::NumberValue(*x),
                HValue::Text(s) => value::Kind::StringValue(s.clone()),
                HValue::Bool(b) => value::Kind::BoolValue(*b),
            }),
        }
    }

    fn data_type(&self) -> i32 {
        match self {
            HValue::Text(_) => 1,
            HValue::Bool(_) => 2,
            HValue::Number(_) => 3,
        }
    }
}

/// Session status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 1,
    Failure = 2,
}

fn write(w: &mut EventWriter, tag: &str, data: plugin_data::Data) -> Result<()> {
    let content = HParamsPluginData { version: 0, data: Some(data) }.encode_to_vec();
    w.add_plugin_summary(tag, PLUGIN, content, 0)
}

/// The experiment summary: `hparams` (name → the values it takes in the sweep), `metrics` (scalar tags).
pub fn write_experiment(
    w: &mut EventWriter,
    name: &str,
    description: &str,
    hparams: &[(String, Vec<HValue>)],
    metrics: &[&str],
) -> Result<()> {
    let hparam_infos = hparams
        .iter()
        .map(|(k, values)| HParamInfo {
            name: k.clone(),
            r#type: values.first().map(HValue::data_type).unwrap_or(1),
            domain_discrete: Some(ListValue { values: values.iter().map(HValue::proto).collect() }),
            ..Default::default()
        })
        .collect();
    let metric_infos = metrics
        .iter()
        .map(|t| MetricInfo {
            name: Some(MetricName { group: String::new(), tag: t.to_string() }),
            display_name: t.to_string(),
            ..Default::default()
        })
        .collect();
    let exp = Experiment {
        name: name.into(),
        description: description.into(),
        time_created_secs: crate::now(),
        hparam_infos,
        metric_infos,
    };
    write(w, EXPERIMENT_TAG, plugin_data::Data::Experiment(exp))
}

/// The start of one session (a trial) with its hyperparameter values.
pub fn write_session_start(w: &mut EventWriter, hparams: &[(String, HValue)], group: &str) -> Result<()> {
    let info = SessionStartInfo {
        hparams: hparams.iter().map(|(k, v)| (k.clone(), v.proto())).collect(),
        group_name: group.into(),
        start_time_secs: crate::now(),
    };
    write(w, SESSION_START_TAG, plugin_data::Data::SessionStartInfo(info))
}

/// The end of a session.
pub fn write_session_end(w: &mut EventWriter, status: Status) -> Result<()> {
    let info = SessionEndInfo { status: status as i32, end_time_secs: crate::now() };
    write(w, SESSION_END_TAG, plugin_data::Data::SessionEndInfo(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{event::What, summary_value};

    #[test]
    fn session_start_round_trips() {
        let dir = std::env::temp_dir().join(format!("dalab-hp-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        let hp = vec![("lr".to_string(), HValue::Number(0.1)), ("method".to_string(), HValue::Text("dann".into()))];
        write_session_start(&mut w, &hp, "g").unwrap();
        w.flush().unwrap();
        let ev = crate::read_events(w.path()).unwrap();
        let Some(What::Summary(s)) = &ev[1].what else { panic!("no summary") };
        let v = &s.value[0];
        assert_eq!(v.tag, SESSION_START_TAG);
        let md = v.metadata.as_ref().unwrap().plugin_data.as_ref().unwrap();
        assert_eq!(md.plugin_name, "hparams");
        let data = HParamsPluginData::decode(md.content.as_slice()).unwrap();
        let Some(plugin_data::Data::SessionStartInfo(info)) = data.data else { panic!("wrong oneof") };
        assert_eq!(info.hparams["lr"].kind, Some(value::Kind::NumberValue(0.1)));
        assert_eq!(info.group_name, "g");
        // The tensor is TensorBoard's NULL_TENSOR: DT_FLOAT with one dimension of size 0.
        let Some(summary_value::Value::Tensor(t)) = &v.value else { panic!("no tensor") };
        assert_eq!(t.dtype, crate::proto::DT_FLOAT);
        assert_eq!(t.tensor_shape.as_ref().unwrap().dim.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
