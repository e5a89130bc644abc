//! Real-time sound servers for the playback tests. ALSA's `null` and
//! `file` plugins take samples as fast as they come, so they never
//! underrun and accept any rate. These servers consume audio in real time
//! through real ALSA plugins (`libasound2-plugins`), like a sound card:
//!
//! - PulseAudio with a null sink (`pulse` plugin): playback that stalls
//!   runs the device dry, and the server can be killed and started again,
//!   like a USB speaker pulled out and plugged back in. `parec` records
//!   what reached the sink.
//! - JACK with its dummy driver (`jack` plugin): a device with one fixed
//!   rate, two channels and float samples only. `jack_rec` records what
//!   reached it.
//!
//! `deploy/deps.sh --test` installs them. A missing program fails the test
//! with that hint; it never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install the test sound servers with `deploy/deps.sh --test`";

fn spawn(cmd: &mut Command, what: &str) -> Child {
    cmd.stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}); {INSTALL_HINT}"))
}

/// Polls `ready` every 50 ms until it holds; after `limit`, panics with
/// what `explain` says.
pub fn wait_until(
    limit: Duration,
    mut ready: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() >= limit {
            panic!("{}", explain());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn not_ready(what: &str, limit: Duration) -> impl FnOnce() -> String {
    move || format!("{what} not ready after {limit:?}")
}

/// Stops a child process when dropped, so a failing test leaves no server.
pub struct Running(Child);

impl Running {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the process to exit by itself, up to `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) {
        wait_until(
            limit,
            || matches!(self.0.try_wait(), Ok(Some(_))),
            || format!("process still running after {limit:?}"),
        );
    }

    /// Kills the process at once (SIGKILL), leaving what it held behind.
    pub fn kill_now(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    /// SIGTERM first: a JACK server killed outright leaves its entry in
    /// JACK's shared-memory registry, and after a few of those no server
    /// starts on the machine ("Too many servers already active").
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A PulseAudio server of its own, in `dir`, with one null sink
/// (`vividsink`, 48 kHz stereo) that plays in real time.
pub struct Pulse {
    dir: PathBuf,
    server: Option<Running>,
}

impl Pulse {
    pub fn start(dir: &Path) -> Pulse {
        let mut pulse = Pulse {
            dir: dir.to_path_buf(),
            server: None,
        };
        pulse.restart();
        pulse
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("pulse.sock")
    }

    fn env(&self, cmd: &mut Command) {
        let runtime = self.dir.join("pulse-runtime");
        cmd.env("HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("PULSE_RUNTIME_PATH", &runtime);
    }

    /// Starts the server (again, after [`Pulse::kill`]) and waits until it
    /// answers.
    pub fn restart(&mut self) {
        std::fs::create_dir_all(self.dir.join("pulse-runtime")).expect("pulse runtime dir");
        let mut cmd = Command::new("pulseaudio");
        self.env(&mut cmd);
        cmd.args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--disable-shm=yes",
            "--log-target=stderr",
            "-L",
            "module-null-sink sink_name=vividsink rate=48000 channels=2",
            "-L",
        ])
        .arg(format!(
            "module-native-protocol-unix socket={} auth-anonymous=1",
            self.socket().display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        self.server = Some(Running(spawn(&mut cmd, "pulseaudio")));
        let server = format!("unix:{}", self.socket().display());
        let limit = Duration::from_secs(20);
        wait_until(
            limit,
            || {
                let mut info = Command::new("pactl");
                self.env(&mut info);
                info.args(["--server", &server, "info"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap_or_else(|e| panic!("cannot run pactl ({e}); {INSTALL_HINT}"))
                    .success()
            },
            not_ready("pulseaudio", limit),
        );
    }

    /// Kills the server at once, as when the device is pulled out.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill_now();
        }
    }

    /// ALSA config text for a PCM `name` that plays to the null sink and
    /// reports underruns to the application.
    pub fn pcm(&self, name: &str) -> String {
        format!(
            "pcm.{name} {{\n  type pulse\n  server \"unix:{}\"\n  device \"vividsink\"\n  handle_underrun true\n}}\n",
            self.socket().display()
        )
    }

    /// Records what the sink plays, as raw mono 16-bit 48 kHz samples in
    /// `raw`, until the returned process is dropped.
    pub fn record(&self, raw: &Path) -> Running {
        let mut cmd = Command::new("parec");
        self.env(&mut cmd);
        cmd.arg("--server")
            .arg(format!("unix:{}", self.socket().display()))
            .args([
                "-d",
                "vividsink.monitor",
                "--raw",
                "--format=s16le",
                "--channels=1",
                "--rate=48000",
                "--latency-msec=20",
            ])
            .stdout(std::fs::File::create(raw).expect("recording file"))
            .stderr(Stdio::null());
        let recorder = Running(spawn(&mut cmd, "parec"));
        // parec connects within milliseconds; give it time to start
        // streaming before anything plays.
        std::thread::sleep(Duration::from_millis(300));
        recorder
    }
}

/// A JACK server of its own (dummy driver: no sound card, real-time
/// clock) at one fixed rate, with two capture ports that carry silence.
pub struct Jack {
    name: String,
    _server: Running,
}

impl Jack {
    /// Starts the server; its log goes to `dir/jackd.log`.
    pub fn start(dir: &Path, rate: u32) -> Jack {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "vivid-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut cmd = Command::new("jackd");
        cmd.args(["-n", &name, "--no-realtime", "-d", "dummy", "-r"])
            .arg(rate.to_string())
            .args(["-p", "1024", "-C", "2", "-P", "2"])
            .env("JACK_NO_AUDIO_RESERVATION", "1");
        let log = dir.join("jackd.log");
        let file = std::fs::File::create(&log).expect("jackd log");
        cmd.stdout(file.try_clone().expect("jackd log"))
            .stderr(file);
        let server = Running(spawn(&mut cmd, "jackd"));
        let jack = Jack {
            name,
            _server: server,
        };
        wait_until(
            Duration::from_secs(30),
            || jack.ports().contains("system:capture_1"),
            || {
                format!(
                    "jackd not ready after 30 s; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            },
        );
        jack
    }

    /// Points a JACK client (the `jack` ALSA plugin in vivid, too) at this
    /// server, and never lets it start one of its own.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("JACK_DEFAULT_SERVER", &self.name)
            .env("JACK_NO_START_SERVER", "1");
    }

    fn ports(&self) -> String {
        let mut cmd = Command::new("jack_lsp");
        self.env(&mut cmd);
        cmd.stderr(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_else(|e| panic!("cannot run jack_lsp ({e}); {INSTALL_HINT}"))
    }

    /// Records `seconds` of two channels into `wav` (16-bit, at the
    /// server's rate) through `jackrec:input1` and `jackrec:input2`, which
    /// a playback PCM connects its channels to.
    pub fn record(&self, wav: &Path, seconds: u32) -> Running {
        let mut cmd = Command::new("jack_rec");
        self.env(&mut cmd);
        cmd.arg("-f")
            .arg(wav)
            .args(["-d", &seconds.to_string(), "-b", "16"])
            .args(["system:capture_1", "system:capture_2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let recorder = Running(spawn(&mut cmd, "jack_rec"));
        let limit = Duration::from_secs(20);
        wait_until(
            limit,
            || self.ports().contains("jackrec:input2"),
            not_ready("jack_rec", limit),
        );
        recorder
    }

    /// ALSA config text for a PCM `name` on this server whose two
    /// channels go to the recorder.
    pub fn pcm(&self, name: &str) -> String {
        format!(
            "pcm.{name} {{\n  type jack\n  playback_ports {{ 0 \"jackrec:input1\" 1 \"jackrec:input2\" }}\n}}\n"
        )
    }
}

/// A `vivid` process whose log lines are read as they come.
pub struct Watched {
    pub process: Running,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Watched {
    pub fn spawn(cmd: &mut Command) -> Watched {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vivid binary runs");
        let stderr = child.stderr.take().expect("piped stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            process: Running(child),
            lines,
            log: Vec::new(),
        }
    }

    /// Reads log lines until one contains `text`; panics after `limit`.
    pub fn wait_for(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?} within {limit:?}:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends a signal (`STOP`, `CONT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.process.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Waits for the exit; returns whether it succeeded and the whole log.
    pub fn finish(mut self, limit: Duration) -> (bool, String) {
        let mut status = None;
        wait_until(
            limit,
            || {
                status = self.process.0.try_wait().ok().flatten();
                status.is_some()
            },
            || {
                format!(
                    "vivid still running after {limit:?}:\n{}",
                    self.log.join("\n")
                )
            },
        );
        // The reader thread ends at EOF; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        let ok = status.is_some_and(|s| s.success());
        (ok, self.log.join("\n"))
    }
}
