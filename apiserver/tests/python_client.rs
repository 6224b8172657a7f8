//! The Python kubernetes client (from PyPI, in a venv) against kube-apiserver: acceptance item 2.

use crate::support;

use std::process::Command;

use support::ApiServer;

#[test]
fn python_client_crud_selectors_paging_watch() {
    let s = ApiServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_client.py"
    );
    let out = Command::new(apiserver::testing::python())
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
