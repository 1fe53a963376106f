//! Fuzz target `uwsgi_vars`: see `ruwsgi_proto_fuzz::check_uwsgi_vars` for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ruwsgi_proto_fuzz::check_uwsgi_vars(data);
});
