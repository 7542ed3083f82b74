//! Python and bash assets in Slurm jobs: the part of the job binary
//! (the bundle) that runs them, with the packed environment activated.

/// The job binary's runner of Python and bash assets (see
/// [`super`]): the body in a file beside the value, the
/// environment's `python` (or `python3`) with the runner script, or
/// `bash -euo pipefail` with upstreams in environment variables and `$OUT`.
pub fn runtime() -> String {
    FOREIGN_RUNTIME.replace("@RUNNER@", &format!("{:?}", super::PYTHON_RUNNER))
}

const FOREIGN_RUNTIME: &str = r#"// ---- Python and bash assets ----
const SLURMBOOK_PYTHON_RUNNER: &str = @RUNNER@;

fn slurmbook_load_foreign<T: serde::de::DeserializeOwned>(inputs: &[(String, String)], name: &str, error: &str) -> T {
    let path = &inputs.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no --input for upstream {name}")).1;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading upstream {name} from {path}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{error}: {e}"))
}

fn slurmbook_publish(output: &str, bytes: &[u8]) {
    let tmp = format!("{output}.tmp.{}", std::process::id());
    std::fs::write(&tmp, bytes).expect("writing the value");
    std::fs::rename(&tmp, output).expect("publishing the value");
}

fn slurmbook_foreign(inputs: &[(String, String)], output: &str, lang: &str, asset: &str, code: &str) -> u64 {
    if let Some(dir) = std::path::Path::new(output).parent() {
        std::fs::create_dir_all(dir).expect("creating the value store");
    }
    let pid = std::process::id();
    let code_file = format!("{output}.code.{pid}");
    std::fs::write(&code_file, code).expect("writing the asset's code");
    let status = if lang == "bash" {
        let out_dir = format!("{}.d", output.strip_suffix(".json").unwrap_or(output));
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("creating $OUT {out_dir}: {e}"));
        let mut command = std::process::Command::new("bash");
        command.arg("-euo").arg("pipefail").arg(&code_file).env("OUT", &out_dir);
        for (name, path) in inputs {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading upstream {name} from {path}: {e}"));
            let value = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(serde_json::Value::String(s)) => s,
                _ => String::from_utf8_lossy(&bytes).trim().to_string(),
            };
            command.env(name, value);
        }
        let status = command.status().unwrap_or_else(|e| panic!("starting bash: {e}"));
        if status.success() {
            slurmbook_publish(output, &serde_json::to_vec(&out_dir).expect("a path is JSON"));
        }
        status
    } else {
        let runner = format!("{output}.runner.{pid}.py");
        std::fs::write(&runner, SLURMBOOK_PYTHON_RUNNER).expect("writing the Python runner");
        let mut args = vec![runner.clone(), asset.to_string(), code_file.clone(), output.to_string()];
        args.extend(inputs.iter().map(|(n, p)| format!("{n}={p}")));
        let run = |program: &str| {
            std::process::Command::new(program).args(&args).env("PYTHONUNBUFFERED", "1").status()
        };
        let status = match run("python") {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => run("python3"),
            other => other,
        };
        let _ = std::fs::remove_file(&runner);
        status.unwrap_or_else(|e| panic!("starting python (the environment's, else python3): {e}"))
    };
    let _ = std::fs::remove_file(&code_file);
    if !status.success() {
        if lang == "bash" {
            slurmbook_emit(serde_json::json!({ "event": "failed", "error": format!("bash: {status}") }));
        }
        std::process::exit(status.code().filter(|c| *c != 0).unwrap_or(1));
    }
    std::fs::metadata(output).map(|m| m.len()).unwrap_or(0)
}

"#;
