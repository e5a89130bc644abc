//! The evdev side of a key trigger: open the device (waiting for it to
//! appear), read its events, and hand presses to the decoder and hold-off.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::decode::{HoldOff, is_press};
use super::{DeviceCheck, RESCAN, TriggerInput, TriggerSpec, act, state};
use crate::serve::control::Controller;

/// Listens for the trigger's key for as long as the service runs.
pub(super) fn watch(spec: &TriggerSpec, controller: &Controller) {
    let TriggerInput::Key { device, code, .. } = &spec.input else {
        return;
    };
    let mut hold_off = HoldOff::new(spec.min_interval);
    loop {
        let mut opened = match evdev::Device::open(device) {
            Ok(opened) => opened,
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "missing (plug it in: it is used when it appears)".to_owned()
                } else {
                    format!("error: cannot open it: {e}")
                };
                controller.set_trigger_state(state(spec, why));
                std::thread::sleep(RESCAN);
                continue;
            }
        };
        let name = opened.name().unwrap_or("unnamed device").to_owned();
        controller.set_trigger_state(state(spec, format!("listening ({name})")));
        loop {
            let events = match opened.fetch_events() {
                Ok(events) => events,
                Err(e) => {
                    // ENODEV: unplugged. Wait for it to come back.
                    controller.set_trigger_state(state(spec, format!("missing (gone: {e})")));
                    break;
                }
            };
            for event in events {
                if is_press(event.event_type().0, event.code(), event.value(), *code)
                    && hold_off.allow(nanos(event.timestamp()))
                {
                    act(spec, controller);
                }
            }
        }
        std::thread::sleep(RESCAN);
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .min(u128::from(u64::MAX)) as u64
}

pub(super) fn check(device: &Path, key: &str, code: u16) -> DeviceCheck {
    match evdev::Device::open(device) {
        Ok(opened) => {
            let name = opened.name().unwrap_or("unnamed device").to_owned();
            let has_key = opened
                .supported_keys()
                .is_some_and(|keys| keys.contains(evdev::KeyCode::new(code)));
            if has_key {
                DeviceCheck::Present(format!("{} ({name}) has {key}", device.display()))
            } else {
                DeviceCheck::Wrong(format!(
                    "{} ({name}) has no {key}; `evtest {}` shows what its keys send",
                    device.display(),
                    device.display()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DeviceCheck::Missing(format!(
            "{} is not there (unplugged?); the service uses it when it appears. `ls /dev/input/by-id` lists what is plugged in",
            device.display()
        )),
        Err(e) => DeviceCheck::Wrong(format!(
            "cannot open {}: {e} (the service user needs the `input` group: `vivid triggers --dropin`)",
            device.display()
        )),
    }
}
