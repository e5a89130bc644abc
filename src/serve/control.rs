//! The control socket: a Unix socket in the service's runtime folder
//! (mode 0660, so only root and the `vivid` group reach it; no network)
//! taking one request per line and answering each with one JSON line.
//!
//! A request is a plain line or a JSON object on one line:
//!
//! ```text
//! play hall                 {"command": "play", "name": "hall"}
//! next | previous           {"command": "next"}
//! stop | pause | resume     {"command": "stop"}
//! status                    {"command": "status"}
//! ```
//!
//! NAME is a narration in `done/` by its output name (`hall` or
//! `hall.wav`). The answer is `{"ok": true, ...status}` or
//! `{"ok": false, "error": "..."}`; a malformed request gets an error
//! answer and the connection stays open. Buttons and sensors
//! ([`super::triggers`]) act through the same [`Controller`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::config::{Action, COMMANDS, Interrupt};
use crate::output::play::{Transport, TransportStatus};

/// Longest request line, in bytes.
pub(crate) const MAX_REQUEST_BYTES: usize = 1024;
/// Connections served at once; more wait for the accept loop.
const MAX_CONNECTIONS: usize = 8;
/// A connection silent this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The control settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    pub socket: PathBuf,
    pub interrupt: Interrupt,
    pub fade: Duration,
}

impl ControlSettings {
    /// The config's `[control]` table, resolved.
    pub(crate) fn from_config(config: &crate::config::Config) -> Self {
        ControlSettings {
            socket: config.control_socket.clone(),
            interrupt: config.control.interrupt,
            fade: Duration::from_secs_f32(config.control.fade_s),
        }
    }
}

/// Where a request came from, and when: the status's "last trigger".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerEvent {
    /// `socket`, or the trigger's name.
    pub source: String,
    pub action: String,
    pub unix: u64,
    /// What came of it: `ok` or the reason it was refused.
    pub outcome: String,
}

/// One trigger's device, as the status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    pub name: String,
    /// The device or GPIO line it listens to.
    pub input: String,
    /// `listening`, `missing (…)` or `error: …`.
    pub state: String,
}

/// What the status reports of playback and triggers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlStatus {
    /// The narration playing (its name in done/), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playing: Option<String>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<TriggerEvent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerState>,
}

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("control socket {path}: {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("control socket {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Applies actions to the player, for the socket and the triggers alike.
pub struct Controller {
    transport: Option<Arc<Transport>>,
    done_dir: PathBuf,
    settings: ControlSettings,
    last_trigger: Mutex<Option<TriggerEvent>>,
    triggers: Mutex<Vec<TriggerState>>,
}

impl Controller {
    /// `transport` is None when playback is off (play requests are
    /// refused, saying so).
    pub fn new(
        transport: Option<Arc<Transport>>,
        done_dir: PathBuf,
        settings: ControlSettings,
    ) -> Controller {
        Controller {
            transport,
            done_dir,
            settings,
            last_trigger: Mutex::new(None),
            triggers: Mutex::new(Vec::new()),
        }
    }

    /// Does what `action` asks; `source` names who asked (the status's
    /// last trigger). Returns the status after it, or why not.
    pub fn apply(&self, action: &Action, source: &str) -> Result<ControlStatus, String> {
        let outcome = self.act(action);
        if *action != Action::Status {
            let event = TriggerEvent {
                source: source.to_owned(),
                action: action.to_string(),
                unix: super::now_unix(),
                outcome: outcome
                    .as_ref()
                    .err()
                    .cloned()
                    .unwrap_or_else(|| "ok".to_owned()),
            };
            match &outcome {
                Ok(()) => tracing::info!(source, %action, "control"),
                Err(reason) => tracing::warn!(source, %action, "control request refused: {reason}"),
            }
            *lock(&self.last_trigger) = Some(event);
        }
        outcome.map(|()| self.status())
    }

    fn act(&self, action: &Action) -> Result<(), String> {
        if *action == Action::Status {
            return Ok(());
        }
        let transport = self.transport.as_ref().ok_or_else(|| {
            "playback is off in this service's config (playback.enabled = false)".to_owned()
        })?;
        let fade = self.settings.fade;
        match action {
            Action::Play(name) => self.play(transport, self.narration(name)?),
            Action::Next | Action::Previous => {
                let current = transport.status();
                let current = current.playing.or(current.last);
                let path = step(
                    &self.narrations()?,
                    current.as_deref(),
                    *action == Action::Next,
                )
                .ok_or_else(|| format!("no narrations in {} yet", self.done_dir.display()))?;
                self.play(transport, path)
            }
            Action::Stop => {
                transport.stop(fade);
                Ok(())
            }
            Action::Pause => transport
                .pause()
                .then_some(())
                .ok_or_else(|| "nothing is playing".to_owned()),
            Action::Resume => transport
                .resume()
                .then_some(())
                .ok_or_else(|| "nothing is paused".to_owned()),
            Action::Status => Ok(()),
        }
    }

    fn play(&self, transport: &Transport, path: PathBuf) -> Result<(), String> {
        let accepted = match self.settings.interrupt {
            Interrupt::Fade => transport.play_now(path, self.settings.fade),
            Interrupt::Queue => transport.enqueue(path),
        };
        accepted.then_some(()).ok_or_else(|| {
            format!(
                "the play queue is full ({} narrations wait)",
                crate::output::transport::MAX_QUEUE
            )
        })
    }

    /// The WAV in done/ a name stands for: a plain name, a regular file.
    fn narration(&self, name: &str) -> Result<PathBuf, String> {
        let stem = name.strip_suffix(".wav").unwrap_or(name);
        let plain = !stem.is_empty()
            && !stem.starts_with('.')
            && !stem.contains(['/', '\\', '\0'])
            && stem.len() <= 200;
        if !plain {
            return Err(format!(
                "`{name}` is not a narration's name (a file name in done/, without folders)"
            ));
        }
        let path = self.done_dir.join(format!("{stem}.wav"));
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(path),
            _ => Err(format!(
                "no narration `{stem}` in {} (`vivid control status` lists what plays; the names are those of the WAV files there)",
                self.done_dir.display()
            )),
        }
    }

    /// Every narration in done/, by name.
    fn narrations(&self) -> Result<Vec<PathBuf>, String> {
        let entries = std::fs::read_dir(&self.done_dir)
            .map_err(|e| format!("cannot list {}: {e}", self.done_dir.display()))?;
        let mut wavs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        wavs.sort();
        Ok(wavs)
    }

    /// Playback and triggers now.
    pub fn status(&self) -> ControlStatus {
        let transport: TransportStatus = self
            .transport
            .as_ref()
            .map(|t| t.status())
            .unwrap_or_default();
        ControlStatus {
            playing: transport.playing.as_deref().map(narration_name),
            paused: transport.paused,
            queued: transport.queued.iter().map(|p| narration_name(p)).collect(),
            last_trigger: lock(&self.last_trigger).clone(),
            triggers: lock(&self.triggers).clone(),
        }
    }

    /// Records a trigger's device state (the triggers' threads call it).
    pub(crate) fn set_trigger_state(&self, state: TriggerState) {
        let mut states = lock(&self.triggers);
        let slot = states.iter().position(|s| s.name == state.name);
        if slot.is_some_and(|i| states[i] == state) {
            return;
        }
        tracing::info!(trigger = %state.name, input = %state.input, "trigger {}", state.state);
        match slot {
            Some(i) => states[i] = state,
            None => states.push(state),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A narration's name: its file name without `.wav`.
fn narration_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

/// The narration after (or before) `current` in `sorted`, wrapping round;
/// the first (or last) when nothing played yet.
fn step(sorted: &[PathBuf], current: Option<&Path>, forward: bool) -> Option<PathBuf> {
    let found = match (current, forward) {
        (Some(current), true) => sorted.iter().find(|p| p.as_path() > current),
        (Some(current), false) => sorted.iter().rev().find(|p| p.as_path() < current),
        (None, _) => None,
    };
    let wrapped = if forward {
        sorted.first()
    } else {
        sorted.last()
    };
    found.or(wrapped).cloned()
}

/// The answer line to a request.
pub(crate) fn reply(result: &Result<ControlStatus, String>) -> String {
    let value = match result {
        Ok(status) => {
            let mut value = serde_json::to_value(status).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("ok".to_owned(), true.into());
            }
            value
        }
        Err(reason) => serde_json::json!({ "ok": false, "error": reason }),
    };
    value.to_string()
}

/// Binds the socket (mode 0660) and serves it on a thread.
pub fn serve(path: &Path, controller: Arc<Controller>) -> Result<(), ControlError> {
    let listener = bind(path)?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("vivid-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    let _ = writeln!(
                        &stream,
                        "{}",
                        reply(&Err("too many connections; try again".to_owned()))
                    );
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (controller, active) = (Arc::clone(&controller), Arc::clone(&active));
                let spawned = std::thread::Builder::new()
                    .name("vivid-control-conn".into())
                    .spawn(move || {
                        serve_connection(stream, &controller);
                        active.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    tracing::warn!("cannot start a thread for a control connection");
                }
            }
        })
        .map_err(|source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(())
}

/// Binds `path`, taking over a socket file a crashed run left behind but
/// never one another running service answers on.
fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let fail = |reason: String| ControlError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(fail(
                "a file that is not a socket is in the way; remove it or set control.socket"
                    .to_owned(),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(fail(
                "another vivid serve answers on it; stop that one first".to_owned(),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            fail(format!(
                "cannot create {} ({e}); under systemd the unit's RuntimeDirectory makes it, else set control.socket to a writable place",
                parent.display()
            ))
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("cannot listen: {e}")))?;
    // Owner and group only: the vivid group's members may control it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| fail(format!("cannot set its mode: {e}")))?;
    Ok(listener)
}

/// One connection: a request per line until it closes or idles.
fn serve_connection(stream: UnixStream, controller: &Controller) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream).take(0);
    loop {
        // At most one request's length (and its newline) per read.
        reader.set_limit(MAX_REQUEST_BYTES as u64 + 1);
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = line.len() > MAX_REQUEST_BYTES && !line.ends_with(b"\n");
        let result = if too_long {
            Err(format!("a request longer than {MAX_REQUEST_BYTES} bytes"))
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) => text
                    .parse::<Action>()
                    .and_then(|action| controller.apply(&action, "socket")),
                Err(_) => Err("a request that is not UTF-8 text".to_owned()),
            }
        };
        if writeln!(writer, "{}", reply(&result)).is_err() || too_long {
            return;
        }
    }
}

/// Sends one request to a running service and returns its answer.
pub fn request(path: &Path, line: &str) -> Result<serde_json::Value, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(path).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    writeln!(&stream, "{}", line.trim()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(&answer).map_err(|e| ControlError::Socket {
        path: path.to_path_buf(),
        reason: format!("an answer that is not JSON ({e}): {answer:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_as_words_or_json_and_bad_ones_say_why() {
        assert_eq!("play hall".parse(), Ok(Action::Play("hall".into())));
        assert_eq!(" NEXT \n".parse(), Ok(Action::Next));
        assert_eq!(
            r#"{"command": "play", "name": "the hall"}"#.parse(),
            Ok(Action::Play("the hall".into()))
        );
        assert_eq!(r#"{"command": "stop"}"#.parse(), Ok(Action::Stop));
        for bad in ["", "play", "jump", "stop now", "{\"command\": 3}", "{"] {
            let error = bad.parse::<Action>().unwrap_err();
            assert!(!error.is_empty(), "{bad}");
        }
        assert!("dance".parse::<Action>().unwrap_err().contains(COMMANDS));
    }

    #[test]
    fn next_and_previous_step_through_done_in_name_order_and_wrap() {
        let list: Vec<PathBuf> = ["a.wav", "b.wav", "c.wav"].map(PathBuf::from).to_vec();
        let at = |p: &str| Some(PathBuf::from(p));
        assert_eq!(step(&list, None, true), at("a.wav"));
        assert_eq!(step(&list, None, false), at("c.wav"));
        assert_eq!(step(&list, Some(Path::new("a.wav")), true), at("b.wav"));
        assert_eq!(step(&list, Some(Path::new("c.wav")), true), at("a.wav"));
        assert_eq!(step(&list, Some(Path::new("a.wav")), false), at("c.wav"));
        // A narration removed meanwhile: its neighbours still step.
        assert_eq!(step(&list, Some(Path::new("bb.wav")), true), at("c.wav"));
        assert_eq!(step(&[], None, true), None);
    }

    #[test]
    fn names_are_plain_files_in_done() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hall.wav"), b"RIFF").unwrap();
        std::fs::create_dir(dir.path().join("sub.wav")).unwrap();
        let controller = Controller::new(
            None,
            dir.path().to_path_buf(),
            ControlSettings {
                socket: dir.path().join("s"),
                interrupt: Interrupt::Fade,
                fade: Duration::from_millis(300),
            },
        );
        assert_eq!(
            controller.narration("hall.wav").unwrap(),
            dir.path().join("hall.wav")
        );
        assert!(controller.narration("hall").is_ok());
        for bad in ["../hall", "/etc/passwd", ".hidden", "sub", "missing", ""] {
            assert!(controller.narration(bad).is_err(), "{bad}");
        }
        // Without playback, play is refused and says why.
        let refused = controller.apply(&Action::Play("hall".into()), "test");
        assert!(refused.unwrap_err().contains("playback.enabled"));
        assert_eq!(
            controller.status().last_trigger.unwrap().source,
            "test",
            "a refused request is still the last trigger"
        );
    }
}
