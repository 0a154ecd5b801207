//! Diagnostics go to stderr through `tracing`; stdout is for the command's
//! output (profiles).
use std::io::{IsTerminal as _, Write as _};

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, util::SubscriberInitExt as _};

/// How diagnostics are written on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// A line per event, for people; coloured only on a terminal.
    #[default]
    Text,
    /// A JSON object per line: `timestamp`, `level`, `message` and the
    /// event's own fields, for log collectors.
    Json,
}

/// Installs the stderr subscriber. The filter comes from `--log-level`, else
/// `SYSCENSUS_LOG`, else `warn`. Colours only when stderr is a terminal and
/// `NO_COLOR` is not set: a log file or a container's log gets plain text.
pub fn init(level: Option<&str>, format: LogFormat) {
    let filter = level
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_env("SYSCENSUS_LOG").ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Also takes the `log` records of the libraries (aya) in.
    subscriber(filter, format, ansi, std::io::stderr).init();
}

/// The subscriber writing to `writer`.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // A log that cannot be written (a full disk under stderr) must not
        // stop the agent: by default the subscriber reports that with
        // eprintln!, which panics when stderr fails.
        .log_internal_errors(false)
        .with_target(false);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Prints a failed command's error as one line on stderr.
pub fn report(error: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "syscensus: {error}");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn logged(format: LogFormat, ansi: bool) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(EnvFilter::new("info"), format, ansi, buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(pod = "web-1", syscalls = 42, "profile written");
            tracing::debug!("filtered out");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_the_events_fields() {
        let text = logged(LogFormat::Json, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["message"], "profile written");
        assert_eq!(event["pod"], "web-1");
        assert_eq!(event["syscalls"], 42);
        assert!(event["timestamp"].is_string(), "{event}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn text_has_colour_codes_only_when_asked() {
        let plain = logged(LogFormat::Text, false);
        assert!(plain.contains("profile written"), "{plain}");
        assert!(plain.contains("pod=\"web-1\""), "{plain}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        // The same event on a terminal: the check above can fail.
        assert!(logged(LogFormat::Text, true).contains('\u{1b}'));
    }
}
