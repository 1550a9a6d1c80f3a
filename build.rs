//! Tells the program which target it was built for, for `ibackup --version` (its long form):
//! Cargo gives the triple to build scripts only, so it is passed on as `IBACKUP_TARGET`.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=IBACKUP_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
