//! A TensorBoard event-file writer.
//!
//! Event files are TFRecord files: each record is `u64 length (LE) | masked CRC32C of the length | data |
//! masked CRC32C of the data`, and each record's data is one `tensorflow.Event` protobuf. The first event carries
//! `file_version = "brain.Event:2"`. We write scalars (`simple_value`) and text (a string tensor for the `text`
//! plugin); the hparams plugin's records are in [`hparams`].
//!
//! Unlike `tensorboard-rs`, file names are unique per writer (time, host, pid and a process-wide counter), files
//! are created with `create_new` (never truncating another writer's file), and I/O errors are returned.

pub mod hparams;
pub mod proto;

use prost::Message;
use proto::{Event, PluginData, Summary, SummaryMetadata, SummaryValue, TensorProto, TensorShapeProto};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensorboard event file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// CRC32C masked as TFRecord does: rotate right by 15 and add a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames one record as TFRecord.
pub fn frame_record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

/// Writes one event file in a log directory.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    buf: Vec<u8>,
}

impl EventWriter {
    /// Creates `logdir` if needed and a new event file in it, named
    /// `events.out.tfevents.<secs>.<host>.<pid>.<counter>` (TensorBoard reads files with this prefix).
    pub fn create(logdir: &Path) -> Result<Self> {
        std::fs::create_dir_all(logdir).map_err(|source| Error::Io { path: logdir.to_path_buf(), source })?;
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}",
            now() as u64,
            hostname(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = logdir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        let mut w = Self { path, out: BufWriter::new(file), buf: Vec::new() };
        w.write_event(Event {
            wall_time: now(),
            step: 0,
            what: Some(proto::event::What::FileVersion("brain.Event:2".into())),
        })?;
        w.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io { path: self.path.clone(), source }
    }

    /// Writes one event (buffered; see [`EventWriter::flush`]).
    pub fn write_event(&mut self, event: Event) -> Result<()> {
        self.buf.clear();
        frame_record(&event.encode_to_vec(), &mut self.buf);
        let r = self.out.write_all(&self.buf);
        r.map_err(|e| self.io(e))
    }

    fn write_summary(&mut self, step: i64, value: SummaryValue) -> Result<()> {
        self.write_event(Event {
            wall_time: now(),
            step,
            what: Some(proto::event::What::Summary(Summary { value: vec![value] })),
        })
    }

    /// A scalar (TensorBoard's Scalars dashboard).
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        self.write_summary(
            step,
            SummaryValue {
                tag: tag.into(),
                metadata: None,
                value: Some(proto::summary_value::Value::SimpleValue(value as f32)),
            },
        )
    }

    /// Text (TensorBoard's Text dashboard renders it as Markdown).
    pub fn add_text(&mut self, tag: &str, text: &str, step: i64) -> Result<()> {
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData { plugin_name: "text".into(), content: Vec::new() }),
            data_class: proto::DATA_CLASS_TENSOR,
            ..Default::default()
        };
        let tensor = TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(TensorShapeProto { dim: vec![] }),
            string_val: vec![text.as_bytes().to_vec()],
            ..Default::default()
        };
        self.write_summary(
            step,
            SummaryValue {
                tag: tag.into(),
                metadata: Some(metadata),
                value: Some(proto::summary_value::Value::Tensor(tensor)),
            },
        )
    }

    /// Writes a summary value carrying plugin data (e.g. the hparams plugin).
    pub fn add_plugin_summary(&mut self, tag: &str, plugin: &str, content: Vec<u8>, step: i64) -> Result<()> {
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData { plugin_name: plugin.into(), content }),
            ..Default::default()
        };
        // TensorBoard's NULL_TENSOR: DT_FLOAT of shape [0]; the data is in the plugin content.
        let tensor = TensorProto {
            dtype: proto::DT_FLOAT,
            tensor_shape: Some(TensorShapeProto { dim: vec![proto::Dim { size: 0 }] }),
            ..Default::default()
        };
        self.write_summary(
            step,
            SummaryValue {
                tag: tag.into(),
                metadata: Some(metadata),
                value: Some(proto::summary_value::Value::Tensor(tensor)),
            },
        )
    }

    /// Flushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        let r = self.out.flush();
        r.map_err(|e| self.io(e))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // Errors here cannot be returned; callers that care call `flush` first.
        let _ = self.out.flush();
    }
}

/// Reads the records of a TFRecord file back, checking both CRCs (for tests and for `dalab report`).
pub fn read_records(path: &Path) -> std::result::Result<Vec<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let at = |what: &str| format!("{}: truncated record at byte {i} ({what})", path.display());
        let len_bytes = data.get(i..i + 8).ok_or_else(|| at("length"))?;
        let len_crc = u32::from_le_bytes(data.get(i + 8..i + 12).ok_or_else(|| at("length crc"))?.try_into().unwrap());
        if masked_crc32c(len_bytes) != len_crc {
            return Err(format!("{}: bad length CRC at byte {i}", path.display()));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let body = data.get(i + 12..i + 12 + len).ok_or_else(|| at("data"))?;
        let crc = data.get(i + 12 + len..i + 16 + len).ok_or_else(|| at("data crc"))?;
        if masked_crc32c(body) != u32::from_le_bytes(crc.try_into().unwrap()) {
            return Err(format!("{}: bad data CRC at byte {i}", path.display()));
        }
        out.push(body.to_vec());
        i += 16 + len;
    }
    Ok(out)
}

/// Decodes the events of a file (for tests and tools).
pub fn read_events(path: &Path) -> std::result::Result<Vec<Event>, String> {
    read_records(path)?
        .iter()
        .map(|r| Event::decode(r.as_slice()).map_err(|e| format!("{}: bad event: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_values() {
        // CRC-32C check value from RFC 3720 (iSCSI), B.4: 32 bytes of zeros -> 0x8A9136AA.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        // Masking: rotr15(crc) + 0xa282ead8, computed by hand for crc = 0: 0xa282ead8.
        assert_eq!(0u32.rotate_right(15).wrapping_add(0xa282_ead8), 0xa282_ead8);
    }

    #[test]
    fn round_trip_and_unique_names() {
        let dir = std::env::temp_dir().join(format!("dalab-tb-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut a = EventWriter::create(&dir).unwrap();
        let b = EventWriter::create(&dir).unwrap();
        assert_ne!(a.path(), b.path(), "two writers in the same second must not share a file");
        a.add_scalar("loss/cls", 0.25, 3).unwrap();
        a.add_text("config", "lr: 0.1", 0).unwrap();
        a.flush().unwrap();
        let ev = read_events(a.path()).unwrap();
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].what, Some(proto::event::What::FileVersion("brain.Event:2".into())));
        match &ev[1].what {
            Some(proto::event::What::Summary(s)) => {
                assert_eq!(s.value[0].tag, "loss/cls");
                assert_eq!(s.value[0].value, Some(proto::summary_value::Value::SimpleValue(0.25)));
                assert_eq!(ev[1].step, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        // A flipped byte is detected by the CRC.
        let mut bytes = std::fs::read(a.path()).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 0xff;
        let bad = dir.join("corrupt");
        std::fs::write(&bad, bytes).unwrap();
        assert!(read_records(&bad).unwrap_err().contains("bad data CRC"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_errors_are_returned_not_panics() {
        // A log dir below a regular file cannot be created.
        let f = std::env::temp_dir().join(format!("dalab-tb-file-{}", std::process::id()));
        std::fs::write(&f, b"x").unwrap();
        let err = EventWriter::create(&f.join("sub")).unwrap_err().to_string();
        assert!(err.contains("dalab-tb-file-"), "{err}");
        std::fs::remove_file(&f).unwrap();
    }
}
