//! The build stays pure Rust: no crate in the normal or build dependency graph
//! (for this host) compiles C. `cc` is what `-sys` crates use to do that; `cmake`
//! and `pkg-config` are its usual companions.

use std::process::Command;

/// `cargo tree -e normal,build -i <krate> --offline`: the tree of what pulls
/// `krate` in, or `None` when nothing does.
fn who_pulls_in(krate: &str) -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        // The whole workspace: the application and the client library.
        .args(["tree", "--workspace", "-e", "normal,build", "-i", krate, "--offline", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        // In Cargo.lock (e.g. for another target) but not in our graph: cargo
        // prints nothing on stdout and "nothing to print" on stderr, exit 0.
        return (!stdout.trim().is_empty()).then_some(stdout);
    }
    // Not in Cargo.lock at all.
    assert!(
        stderr.contains("did not match any packages"),
        "cargo tree -i {krate} failed unexpectedly ({}):\n{stderr}",
        out.status
    );
    None
}

#[test]
fn no_c_compiler_in_the_build() {
    for krate in ["cc", "cmake", "pkg-config"] {
        if let Some(tree) = who_pulls_in(krate) {
            panic!("`{krate}` is in the build (a C toolchain would be needed); pulled in by:\n{tree}");
        }
    }
}
