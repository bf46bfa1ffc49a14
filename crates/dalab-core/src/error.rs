/// Errors of dalab-core. Messages are one line and name the key or step at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is wrong; the message starts with its key path.
    #[error("{0}")]
    Config(String),
    /// A method name that the registry does not know.
    #[error("unknown method `{name}` (registered: {known})")]
    UnknownMethod { name: String, known: String },
    /// A libtorch error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The loss became NaN or infinite.
    #[error("{what} is {value} at step {step}")]
    NonFinite { what: String, value: f64, step: usize },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
