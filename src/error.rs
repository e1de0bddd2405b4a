//! Typed errors of the library. The CLI prints them in one line (`Display`).

use std::path::PathBuf;

/// Everything that can go wrong in mafat.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `.cfg` text could not be parsed or describes an impossible network.
    #[error("{origin}:{line}: {message}")]
    Cfg {
        /// File path or built-in model name.
        origin: String,
        /// 1-based line number (0 when the problem is not tied to one line).
        line: usize,
        message: String,
    },

    /// A `.weights` file does not fit the network.
    #[error("{path}: {message}")]
    Weights { path: String, message: String },

    /// A command-line argument or option value is malformed.
    #[error("{0}")]
    Usage(String),

    /// A fusing/tiling configuration (`--groups`) breaks a rule.
    #[error("config `{config}`: {message}")]
    Config { config: String, message: String },

    /// An input image could not be read or decoded.
    #[error("cannot read image {path}: {message}")]
    Image { path: PathBuf, message: String },

    /// A model name that is neither a built-in nor an existing file.
    #[error(
        "unknown model `{0}`: give a path to a Darknet .cfg file or one of the built-in models: {list}",
        list = crate::model::builtin::NAMES.join(", ")
    )]
    UnknownModel(String),

    /// No GPU adapter is available (or none matches the requested name).
    #[error("{0}")]
    NoAdapter(String),

    /// wgpu reported a validation, out-of-memory or device-lost error.
    #[error("GPU error during {during}: {message}")]
    Gpu { during: String, message: String },

    /// An allocation would pass the device-memory budget.
    #[error(
        "device-memory budget exceeded: allocating {request} bytes for {label} with {held} bytes already held would pass the budget of {budget} bytes; raise --budget or use a finer tiling"
    )]
    Budget {
        budget: u64,
        request: u64,
        held: u64,
        label: String,
    },

    /// No configuration in the search space fits the budget.
    #[error(
        "no configuration of {model} fits a budget of {budget} bytes: the smallest needs {minimum} bytes (--groups {config} --residency {residency}); raise --budget to at least that"
    )]
    NoFit {
        model: String,
        budget: u64,
        minimum: u64,
        config: String,
        residency: String,
    },

    /// A buffer, binding or dispatch would pass an adapter limit.
    #[error("{0}")]
    DeviceLimit(String),

    /// The network uses something this path cannot run.
    #[error("{0}")]
    Unsupported(String),

    /// File-system errors, with the path that failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
