//! Finding and building the binary a full run measures: the one a user
//! installs, built by `cargo build --release` (see the bench's module doc
//! for why not the one `cargo bench` builds).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use crate::Res;

const BIN_NAME: &str = "bloomreach-vouchers-mcp";

/// The binary to measure in a full run: `SERVE_BENCH_BIN`, or the release
/// build of this package, built first.
pub fn release_binary() -> Res<PathBuf> {
    if let Some(path) = std::env::var_os("SERVE_BENCH_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!("SERVE_BENCH_BIN={} is not a file", path.display()));
        }
        return Ok(path);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = target_dir(manifest_dir);
    let bin = target_dir.join("release").join(BIN_NAME);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "serve bench: cargo build --release --bin {BIN_NAME} (target dir {})",
        target_dir.display()
    );
    let started = Instant::now();
    let mut build = std::process::Command::new(&cargo);
    build
        .args(["build", "--release", "--quiet", "--bin", BIN_NAME])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null());
    // Cargo gives this bench the package's variables (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, ...). Build scripts that watch them with
    // `rerun-if-env-changed` (ring's does) would see them change between a
    // plain `cargo build` and this one and rebuild half the tree each time.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if is_cargo_run_variable(key) {
            build.env_remove(key);
        }
    }
    let status = build.status();
    match status {
        Ok(s) if s.success() => {
            eprintln!(
                "serve bench: release binary ready in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        other => {
            let why = match other {
                Ok(s) => format!("exited with {s}"),
                Err(e) => format!("could not run {}: {e}", Path::new(&cargo).display()),
            };
            if bin.is_file() {
                eprintln!(
                    "serve bench: WARNING: cargo build --release {why}; measuring the existing {}",
                    bin.display()
                );
            } else {
                return Err(format!(
                    "cargo build --release {why}, and there is no {}",
                    bin.display()
                ));
            }
        }
    }
    if !bin.is_file() {
        return Err(format!("the build left no binary at {}", bin.display()));
    }
    Ok(bin)
}

/// Variables Cargo sets for the programs it runs, as opposed to the ones a
/// user sets to configure Cargo.
fn is_cargo_run_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_BIN_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

fn target_dir(manifest_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            manifest_dir.join(dir)
        };
    }
    // This executable is <target>/<profile>/deps/serve-<hash>.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(target) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            if exe.parent().and_then(Path::file_name) == Some("deps".as_ref()) {
                return target.to_path_buf();
            }
        }
    }
    manifest_dir.join("target")
}
