//! The signal framework of ruwsgi (placeholder layout, completed by the table's merge).
#![warn(missing_docs)]

pub mod sockets;
pub mod remote;
pub mod mules;
