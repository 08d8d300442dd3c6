//! One integration-test crate: every module drives the real binary against
//! real kernel objects.

mod common;

mod bench;
mod completion;
mod debugging;
mod demos;
mod fifo;
mod ls;
mod manpage;
mod namespaces;
mod posix;
mod python;
mod socket;
mod sysv;
mod usage;
