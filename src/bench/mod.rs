//! The gather-vs-one-hot benchmark (`cargo run --release`, and the web
//! page): one sweep, one JSON schema, one chart, wherever it runs. The sweep
//! is async so a page can run it without blocking; the command-line program
//! drives it with [`run_blocking`].
//!
//! Feature `bench` (on with the default `cli`).

mod chart;
mod report;
mod roofline;
mod sweep;

pub use chart::svg;
pub use report::{summarize, Results, Roofline, Row, SCHEMA};
pub use roofline::{measure as measure_roofline, measure_async as measure_roofline_async};
#[cfg(not(target_arch = "wasm32"))]
pub use sweep::run_blocking;
pub use sweep::{run, Plan, Progress, BACKWARD_TOLERANCE, MAX_REPS};
