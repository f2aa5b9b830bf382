//! Running Gatehouse: typed [`config::Settings`] and [`node::start`], which builds a running node
//! (authorization server, gateway, reference apps, machine client, and their background loops)
//! and returns a [`node::Node`] with the addresses it bound and a shutdown. The command line
//! (`main.rs`) is a thin layer over it.
//!
//! This crate composes the others; none of them may depend on it.

pub mod config;
pub mod doctor;
pub mod files;
pub mod node;
pub mod process;

mod apps;
mod gateway;
mod verifier;
