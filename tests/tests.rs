//! One integration-test crate: every module drives the real binary against
//! real kernel objects.

mod common;

mod bench;
mod demos;
mod fifo;
mod ls;
mod posix;
mod sysv;
mod usage;
