//! Link the embedded interpreter with an rpath to its own LIBDIR, so the binary never picks
//! up another libpython of the same version from the default linker path.
//!
//! Also records the interpreter the build was made against as `RUWSGI_PYTHON_EXECUTABLE`, so
//! the plugin can set `PyConfig.executable` to it when no `home` is configured: without it
//! CPython resolves `python3` through `PATH` (a pyenv shim, or an activated venv by accident).
//!
//! And emits PyO3's interpreter cfgs (`Py_3_9` ... `Py_3_N` for the target version and up,
//! `Py_LIMITED_API`, `PyPy`, ...), so code that reaches past pyo3-ffi into a version-specific
//! CPython API can be gated on the version it exists in.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    let exe = config.executable().map(str::to_string).unwrap_or_default();
    println!("cargo:rustc-env=RUWSGI_PYTHON_EXECUTABLE={exe}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
