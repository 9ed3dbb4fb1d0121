//! Logging set up in one place: `RUST_LOG`-style filter, pretty or JSON lines, written to stdout
//! by a background thread (tracing-appender's non-blocking writer) so that a worker never
//! waits on a slow pipe. The writer is lossy: when its buffer (128k lines) is full, lines are
//! dropped rather than stalling requests. Keep the returned guard alive until exit: dropping
//! it flushes what is buffered.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// actix-http logs a client's malformed request ("stream error: request parse error") at
/// ERROR, with no request to tie it to; it is the client's mistake and is counted by the
/// connection's 400. Quiet unless the filter names actix_http itself.
const QUIET_CLIENT_ERRORS: &str = "actix_http::h1::dispatcher=off";

/// Installs the global subscriber; a second call (tests) is a no-op and returns no guard.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat, default_filter: &str) -> Option<WorkerGuard> {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default_filter.to_owned());
    let directives = if directives.contains("actix_http") {
        directives
    } else {
        format!("{directives},{QUIET_CLIENT_ERRORS}")
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(writer),
            )
            .try_init(),
        // Colours only for a person at a terminal: escape codes in a log file or a collector
        // are noise, and writing them cost the shipped access log a few per cent per request.
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_writer(writer),
            )
            .try_init(),
    };
    installed.ok().map(|()| guard)
}
