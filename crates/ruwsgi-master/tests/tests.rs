//! Integration tests of the master (forked master, fake plugin, real workers).
