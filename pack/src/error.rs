//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while packing or unpacking an environment.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The project has a `pixi.toml` but no `pixi.lock` beside it.
    #[error("no lock file at {0} (run `pixi lock` in the project)")]
    MissingLock(PathBuf),

    /// The lock file could not be read or parsed.
    #[error("cannot read lock file {path}: {message}")]
    InvalidLock {
        /// The lock file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },

    /// The lock file has no environment of that name.
    #[error("lock file {lock} has no environment `{environment}` (it has: {available})")]
    EnvironmentNotInLock {
        /// The lock file.
        lock: PathBuf,
        /// The requested environment.
        environment: String,
        /// The environments the lock does have, comma separated.
        available: String,
    },

    /// The environment is not locked for the requested platform.
    #[error(
        "environment `{environment}` in {lock} is not locked for platform `{platform}` (it is locked for: {available}); add it to the workspace platforms and run `pixi lock`"
    )]
    PlatformNotInLock {
        /// The lock file.
        lock: PathBuf,
        /// The environment.
        environment: String,
        /// The requested platform.
        platform: String,
        /// The platforms the environment is locked for, comma separated.
        available: String,
    },

    /// The environment holds packages slurmbook cannot pack itself
    /// (PyPI packages, conda packages built from source).
    #[error(
        "environment `{environment}` for `{platform}` has {what}, which slurmbook cannot pack natively (install pixi-pack, or drop them): {packages}"
    )]
    Unsupported {
        /// The environment.
        environment: String,
        /// The platform.
        platform: String,
        /// What kind of packages, e.g. "PyPI packages".
        what: &'static str,
        /// The offending packages, comma separated.
        packages: String,
    },

    /// A PyPI package of the environment is not a wheel (a source
    /// distribution, a source tree, an editable install).
    #[error(
        "PyPI package `{package}` of environment `{environment}` is {what} ({location}): slurmbook installs only wheels on the cluster (with no index and no build); make it a conda package (`pixi build` or `rattler-build`) or depend on a version that has a wheel"
    )]
    PypiNotWheel {
        /// The package name.
        package: String,
        /// The environment.
        environment: String,
        /// "a source distribution", "a source tree (editable or path/git)".
        what: &'static str,
        /// Where the lock says it comes from.
        location: String,
    },

    /// A locked package has no sha256 in the lock, so it cannot be verified.
    #[error("package {package} has no sha256 in the lock file; refusing to pack it unverified")]
    MissingChecksum {
        /// The package's file name.
        package: String,
    },

    /// A fetched package does not match its checksum in the lock file.
    #[error("checksum mismatch for package {package}: lock says {algorithm} {expected}, the file from {url} has {actual}")]
    ChecksumMismatch {
        /// The package's file name.
        package: String,
        /// `sha256` or `md5`.
        algorithm: &'static str,
        /// The checksum in the lock file.
        expected: String,
        /// The checksum of the bytes fetched.
        actual: String,
        /// Where the package came from.
        url: String,
    },

    /// A package could not be fetched.
    #[error("cannot fetch package {package} from {url}: {message}")]
    Fetch {
        /// The package's file name.
        package: String,
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },

    /// Indexing the local channel failed.
    #[error("cannot index the local channel {channel}: {message}")]
    Index {
        /// The channel directory.
        channel: PathBuf,
        /// Why.
        message: String,
    },

    /// `pixi-pack` was used and failed.
    #[error("pixi-pack failed ({status}): {stderr}")]
    PixiPack {
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },

    /// The archive is not a slurmbook (or pixi-pack) environment archive.
    #[error("{archive} is not an environment archive: {message}")]
    BadArchive {
        /// The archive.
        archive: PathBuf,
        /// Why.
        message: String,
    },

    /// Installing the packages into the prefix failed.
    #[error("cannot unpack the environment into {prefix}: {message}")]
    Unpack {
        /// The prefix.
        prefix: PathBuf,
        /// Why.
        message: String,
    },

    /// The async runtime for rattler could not be started.
    #[error("cannot start an async runtime: {0}")]
    Runtime(std::io::Error),

    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot create".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = PackError> = std::result::Result<T, E>;

/// Attaches a path and an action to an I/O error.
pub(crate) trait IoContext<T> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| PackError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
