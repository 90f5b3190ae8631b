//! The HTTP layer: `mode: http` listeners.

pub mod answer;
pub mod body;
pub mod forward;
pub mod route;
