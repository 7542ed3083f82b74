//! Fetching one locked file (a conda package, a PyPI wheel) by its URL.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use url::Url;

use crate::error::{IoContext, PackError, Result};

/// Copies (`file:`) or downloads (`http:`, `https:`) `url` to `dest`;
/// returns the number of bytes.
pub(crate) fn fetch(url: &Url, dest: &Path, package: &str) -> Result<u64> {
    let fetch_error = |message: String| PackError::Fetch {
        package: package.to_string(),
        url: url.to_string(),
        message,
    };
    let mut reader: Box<dyn Read> = match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| fetch_error("not a local path".into()))?;
            Box::new(File::open(&path).map_err(|e| fetch_error(e.to_string()))?)
        }
        "http" | "https" => {
            let response = ureq::get(url.as_str())
                .call()
                .map_err(|e| fetch_error(e.to_string()))?;
            Box::new(response.into_body().into_reader())
        }
        other => return Err(fetch_error(format!("unsupported URL scheme `{other}`"))),
    };
    let mut out = BufWriter::new(File::create(dest).io("cannot create", dest)?);
    let bytes = std::io::copy(&mut reader, &mut out).map_err(|e| fetch_error(e.to_string()))?;
    out.flush().io("cannot write", dest)?;
    Ok(bytes)
}
