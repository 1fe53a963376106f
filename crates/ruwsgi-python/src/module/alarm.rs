//! Alarms from Python (§2.14): `uwsgi.alarm(name, msg)`. A thin binding over the host: the
//! message (bytes or str) is queued for the master, which runs the alarm. It always
//! returns `None`; as in uWSGI it does nothing, silently, without alarms, for an unknown
//! alarm or a message longer than `alarm-msg-size`. A full queue (the master far behind)
//! is logged.

use pyo3::prelude::*;
use ruwsgi_plugin::signal::sockets::SendError;
use ruwsgi_plugin::signal::AlarmError;

use crate::module::mule::message_bytes;
use crate::runtime;

/// `alarm(name, msg)`: raise alarm `name` with `msg` (bytes or str). Always `None`;
/// `TypeError` only for arguments of the wrong type.
#[pyfunction]
fn alarm(name: &str, msg: &Bound<'_, PyAny>) -> PyResult<()> {
    let msg = message_bytes(msg)?;
    let Some(host) = runtime::host() else {
        return Ok(());
    };
    if let Err(AlarmError::Send(e)) = host.alarm(name, &msg) {
        if matches!(e, SendError::Full) {
            runtime::log(&format!(
                "uwsgi.alarm: the alarm queue is full, alarm '{name}' dropped"
            ));
        } else {
            runtime::log(&format!("uwsgi.alarm: alarm '{name}' dropped: {e}"));
        }
    }
    Ok(())
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(alarm, m)?)?;
    Ok(())
}
