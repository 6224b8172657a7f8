//! The Python kubernetes client (from PyPI, in a venv) against kube-apiserver: acceptance item 2.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::ApiServer;

/// The venv's python: $TETSU_PYTHON (set by scripts/test), else a venv made here under target/.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TETSU_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyvenv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .unwrap()
                .success()
        );
        let pip = venv.join("bin/pip");
        assert!(
            Command::new(pip)
                .args(["install", "-q", "kubernetes"])
                .status()
                .unwrap()
                .success()
        );
    }
    python
}

#[test]
fn python_client_crud_selectors_paging_watch() {
    let s = ApiServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_client.py"
    );
    let out = Command::new(python())
        .arg(script)
        .arg(s.url())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "python client test failed:\n{}\n{}\n--- apiserver log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
}
