//! The GPIO side of a line trigger: request the line with edge detection
//! (waiting for the chip to appear), and hand edges and the passing of
//! time to the debouncer and hold-off.

use std::path::Path;
use std::time::Duration;

use gpiocdev::line::{EdgeDetection, EdgeKind, Value};

use super::decode::{HoldOff, LineDecoder};
use super::{DeviceCheck, RESCAN, TriggerInput, TriggerSpec, act, state};
use crate::serve::control::Controller;

/// How long one wait for an edge lasts when no debounce is pending.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Listens on the trigger's line for as long as the service runs.
pub(super) fn watch(spec: &TriggerSpec, controller: &Controller) {
    let TriggerInput::Gpio {
        chip,
        line,
        edge,
        active_low,
        debounce,
    } = &spec.input
    else {
        return;
    };
    let mut hold_off = HoldOff::new(spec.min_interval);
    loop {
        if let DeviceCheck::Missing(why) | DeviceCheck::Wrong(why) =
            check(chip, *line, &spec.origin)
        {
            controller.set_trigger_state(state(spec, format!("error: {why}")));
            std::thread::sleep(RESCAN * 5);
            continue;
        }
        let request = gpiocdev::Request::builder()
            .on_chip(chip)
            .with_consumer("vivid")
            .with_line(*line)
            .with_edge_detection(EdgeDetection::BothEdges)
            .request();
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                controller.set_trigger_state(state(spec, format!("error: {e}")));
                std::thread::sleep(RESCAN * 5);
                continue;
            }
        };
        let level = request
            .value(*line)
            .map(|v| v == Value::Active)
            .unwrap_or(false);
        let mut decoder = LineDecoder::new(*edge, *active_low, *debounce, level);
        controller.set_trigger_state(state(spec, "listening".to_owned()));
        if let Err(e) = listen(&request, &mut decoder, &mut hold_off, spec, controller) {
            controller.set_trigger_state(state(spec, format!("error: {e}")));
        }
        std::thread::sleep(RESCAN);
    }
}

/// Reads edges until the line fails.
fn listen(
    request: &gpiocdev::Request,
    decoder: &mut LineDecoder,
    hold_off: &mut HoldOff,
    spec: &TriggerSpec,
    controller: &Controller,
) -> Result<(), gpiocdev::Error> {
    loop {
        let now = monotonic_ns();
        let wait = decoder
            .deadline_ns()
            .map_or(IDLE_WAIT, |d| Duration::from_nanos(d.saturating_sub(now)));
        let acted = if request.wait_edge_event(wait)? {
            let event = request.read_edge_event()?;
            decoder.edge(event.kind == EdgeKind::Rising, event.timestamp_ns)
        } else {
            decoder.settle(monotonic_ns())
        };
        if acted && hold_off.allow(monotonic_ns()) {
            act(spec, controller);
        }
    }
}

/// The clock the kernel stamps GPIO edges with (CLOCK_MONOTONIC).
fn monotonic_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC);
    now.map_or(0, |t| {
        (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64
    })
}

pub(super) fn check(chip: &Path, line: u32, origin: &str) -> DeviceCheck {
    let info = gpiocdev::chip::Chip::from_path(chip).and_then(|c| c.info());
    match info {
        Ok(info) if line < info.num_lines => DeviceCheck::Present(format!(
            "line {line} of {} ({})",
            chip.display(),
            info.label
        )),
        Ok(info) => DeviceCheck::Wrong(format!(
            "{origin}: line {line} is beyond {} ({}), which has lines 0 to {}",
            chip.display(),
            info.label,
            info.num_lines.saturating_sub(1)
        )),
        Err(_) if !chip.exists() => DeviceCheck::Missing(format!(
            "{} is not there (`ls /dev/gpiochip*` lists this board's chips)",
            chip.display()
        )),
        Err(e) => DeviceCheck::Wrong(format!(
            "cannot open {}: {e} (the service user needs access: `vivid triggers --dropin`)",
            chip.display()
        )),
    }
}
