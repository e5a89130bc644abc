//! Buttons and sensors: `[[trigger]]` tables map an input device's key
//! (Linux evdev: USB buttons, keypads, handset switches) or a GPIO line
//! (the board's header, through the kernel's GPIO character device) to an
//! action, which goes through the same [`Controller`] as the control
//! socket. Each trigger has its own thread that waits for its device:
//! one that is missing (unplugged) is looked for again every few seconds
//! and used when it appears; one that goes away is waited for again. The
//! device code is thin; what an event means ([`decode`]) is tested on
//! recorded streams.

pub mod decode;
mod evdev_input;
mod gpio_line;

use std::sync::Arc;
use std::time::Duration;

pub use crate::config::{Edge, TriggerInput, TriggerSpec, chip_path, device_path};

use super::control::{Controller, TriggerState};

/// How often a missing device is looked for.
const RESCAN: Duration = Duration::from_secs(2);

/// Starts one thread per trigger.
pub fn start(specs: &[TriggerSpec], controller: &Arc<Controller>) {
    for spec in specs {
        let (spec, controller) = (spec.clone(), Arc::clone(controller));
        controller.set_trigger_state(state(&spec, "starting".to_owned()));
        let spawned = std::thread::Builder::new()
            .name(format!("vivid-trigger-{}", spec.name))
            .spawn(move || match &spec.input {
                TriggerInput::Key { .. } => evdev_input::watch(&spec, &controller),
                TriggerInput::Gpio { .. } => gpio_line::watch(&spec, &controller),
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a thread for a trigger: {e}");
        }
    }
}

fn state(spec: &TriggerSpec, state: String) -> TriggerState {
    TriggerState {
        name: spec.name.clone(),
        input: spec.input.describe(),
        state,
    }
}

/// An activation that got past the hold-off: the action, as the trigger.
fn act(spec: &TriggerSpec, controller: &Controller) {
    // A refusal (no such narration, the queue full) is logged and shown
    // as the last trigger's outcome; the trigger keeps listening.
    let _ = controller.apply(&spec.action, &spec.name);
}

/// What `vivid doctor` says of a trigger's device now.
pub enum DeviceCheck {
    Present(String),
    /// Not there now: watched for, a warning.
    Missing(String),
    /// There but unusable as configured: an error.
    Wrong(String),
}

/// Checks a trigger's device without taking it.
pub fn check(spec: &TriggerSpec) -> DeviceCheck {
    match &spec.input {
        TriggerInput::Key { device, key, code } => evdev_input::check(device, key, *code),
        TriggerInput::Gpio { chip, line, .. } => gpio_line::check(chip, *line, &spec.origin),
    }
}

/// The systemd drop-in that lets the hardened unit reach input devices
/// and GPIO chips (the unit allows only sound cards), with the groups
/// that own them on this machine (`input`; `gpio` where it exists, as on
/// JetPack and Raspberry Pi OS).
pub fn unit_dropin(group_exists: impl Fn(&str) -> bool) -> String {
    let groups: Vec<&str> = ["input", "gpio"]
        .into_iter()
        .filter(|g| group_exists(g))
        .collect();
    let mut text = String::from(
        "# vivid's triggers: input devices (buttons, keypads) and GPIO chips.\n\
         # Made by `vivid triggers --dropin`; install it as\n\
         # /etc/systemd/system/vivid.service.d/triggers.conf, then\n\
         # `systemctl daemon-reload && systemctl restart vivid`.\n\
         [Service]\n\
         DeviceAllow=char-input r\n\
         DeviceAllow=char-gpiochip rw\n",
    );
    if !groups.is_empty() {
        text.push_str(&format!("SupplementaryGroups={}\n", groups.join(" ")));
    }
    text
}
