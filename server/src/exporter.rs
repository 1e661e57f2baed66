//! Reads a feature repo's Python definitions by running the SDK's exporter
//! (`python -m larder.repo <dir>`), which prints the registry document as JSON.

use std::path::Path;
use std::process::Command;

use larder_registry::RegistryDoc;

use crate::error::{Error, Result};

/// The Python interpreter to run: `$LARDER_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("LARDER_PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// True when the repo has Python definition files.
#[allow(clippy::disallowed_methods, reason = "called by the CLI before any serving")]
pub fn has_python_files(repo_dir: &Path) -> bool {
    std::fs::read_dir(repo_dir)
        .map(|d| d.flatten().any(|e| e.path().extension().is_some_and(|x| x == "py")))
        .unwrap_or(false)
}

/// Runs the exporter on `repo_dir` and parses its output.
pub fn export(repo_dir: &Path) -> Result<RegistryDoc> {
    let py = python();
    let out = Command::new(&py)
        .arg("-m")
        .arg("larder.repo")
        .arg(repo_dir)
        .output()
        .map_err(|e| {
            Error::Internal(format!(
                "cannot run `{py}` to read the Python definitions: {e} (set LARDER_PYTHON)"
            ))
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // The SDK itself missing (the exporter module cannot be found) is the one case that is
        // not the definitions' fault.
        let sdk_missing = stderr.contains("No module named larder.repo")
            || stderr.contains("No module named 'larder'")
            || stderr.contains("No module named larder");
        if sdk_missing {
            return Err(Error::Internal(format!(
                "`{py} -m larder.repo` cannot run: the Larder SDK is not installed for this interpreter \
                 (`pip install ./sdk-python`, or set LARDER_PYTHON)\n{}",
                stderr.trim_end()
            )));
        }
        let message = stderr
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::invalid(
            "definitions",
            format!(
                "the definitions in {} cannot be read:\n{}",
                repo_dir.display(),
                message.trim_end()
            ),
        ));
    }
    for line in stderr.lines().filter(|l| l.starts_with("warning: ")) {
        eprintln!("{line}");
    }
    read_doc(&out.stdout, "the exporter's output")
}

/// Parses a registry document (JSON).
pub fn read_doc(bytes: &[u8], what: &str) -> Result<RegistryDoc> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| Error::Internal(format!("{what} is not a valid registry document: {e}")))
}
