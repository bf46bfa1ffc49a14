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
    /// A loss became NaN or infinite (`kind` is `NaN` or `infinite`; `what` names the loss, `step` is 0-based).
    #[error("{kind} {what} at step {step}")]
    NonFiniteLoss { kind: &'static str, what: String, step: usize },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
