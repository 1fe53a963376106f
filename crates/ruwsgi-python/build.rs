//! Link the embedded interpreter with an rpath to its own LIBDIR, so the binary never picks
//! up another libpython of the same version from the default linker path.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
