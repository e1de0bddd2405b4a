//! Typed errors of the library. The CLI prints them in one line (`Display`).

use std::path::PathBuf;

/// Everything that can go wrong in mafat.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `.cfg` text could not be parsed or describes an impossible network.
    #[error("{}:{line}: {message}", crate::units::shorten(origin))]
    Cfg {
        /// File path or built-in model name.
        origin: String,
        /// 1-based line number (0 when the problem is not tied to one line).
        line: usize,
        /// What is wrong and, where it helps, what was expected.
        message: String,
    },

    /// A `.weights` file does not fit the network.
    #[error("{}: {message}", crate::units::shorten(path))]
    Weights {
        /// The file's path (or what else the parameters came from).
        path: String,
        /// What does not fit.
        message: String,
    },

    /// An ONNX model (or tensor file) cannot be read, or uses what mafat does not support.
    #[error("{}: {message}", crate::units::shorten(origin))]
    Onnx {
        /// The file's path.
        origin: String,
        /// What is wrong (naming the node and its operator where there is one) and what is
        /// supported.
        message: String,
    },

    /// A command-line argument or option value is malformed.
    #[error("{0}")]
    Usage(String),

    /// A fusing/tiling configuration (`--groups`) breaks a rule.
    #[error("config `{}`: {message}", crate::units::shorten(config))]
    Config {
        /// The configuration's text.
        config: String,
        /// The broken rule and where.
        message: String,
    },

    /// An input image could not be read or decoded.
    #[error("cannot read image {}: {message}", crate::units::shorten(&path.display().to_string()))]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why it could not be used.
        message: String,
    },

    /// A model name that is neither a built-in nor an existing file.
    #[error(
        "unknown model `{}`: give a path to a Darknet .cfg or an ONNX .onnx file, or one of the built-in models: {list}",
        crate::units::prefix(.0),
        list = crate::model::builtin::NAMES.join(", ")
    )]
    UnknownModel(String),

    /// No GPU adapter is available (or none matches the requested name).
    #[error("{0}")]
    NoAdapter(String),

    /// wgpu reported a validation, out-of-memory or device-lost error.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        /// What mafat was doing (e.g. `allocating …`, `running …`).
        during: String,
        /// wgpu's message.
        message: String,
    },

    /// An allocation would pass the device-memory budget.
    #[error(
        "device-memory budget exceeded: allocating {request} bytes for {label} with {held} bytes already held would pass the budget of {budget} bytes; raise --budget or use a finer tiling"
    )]
    Budget {
        /// The pool's budget, in bytes.
        budget: u64,
        /// Bytes the refused allocation asked for.
        request: u64,
        /// Bytes the pool held at the time (after dropping its idle buffers).
        held: u64,
        /// The refused buffer's label.
        label: String,
    },

    /// No configuration in the search space fits the budget.
    #[error(
        "no configuration of {model} fits a budget of {budget} bytes: the smallest needs {minimum} bytes (--groups {config} --residency {residency}); raise --budget to at least that"
    )]
    NoFit {
        /// The network's name.
        model: String,
        /// The budget asked for, in bytes.
        budget: u64,
        /// The smallest predicted peak of any configuration in the search space, in bytes.
        minimum: u64,
        /// The configuration that reaches `minimum`, in `--groups` syntax.
        config: String,
        /// Its weight residency (`resident` or `per-group`).
        residency: String,
    },

    /// A run produced infinities or NaNs: the weights or input overflow the storage precision (or
    /// are themselves non-finite).
    #[error(
        "the outputs hold {count} non-finite values (the first in the output of layer {layer}): the weights or input overflow {precision} (largest finite {largest}) or are not finite themselves; check them{hint}"
    )]
    NonFinite {
        /// How many output values are infinite or NaN.
        count: usize,
        /// The layer whose output holds the first of them.
        layer: usize,
        /// The precision maps were stored at.
        precision: crate::precision::Precision,
        /// Its largest finite value.
        largest: f32,
        /// What else to try (`, or run at --precision f32` after an f16 run).
        hint: &'static str,
    },

    /// `--verify` found the GPU's outputs off the CPU reference past the tolerance, or a tiled run
    /// different from the untiled one: a wrong answer, reported as a failure.
    #[error(
        "verification failed: {0}; this is a bug in mafat or the driver: please report it with the command line"
    )]
    Verification(String),

    /// A buffer, binding or dispatch would pass an adapter limit.
    #[error("{0}")]
    DeviceLimit(String),

    /// The network uses something this path cannot run.
    #[error("{0}")]
    Unsupported(String),

    /// File-system errors, with the path that failed.
    #[error("{}: {source}", crate::units::shorten(&path.display().to_string()))]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
