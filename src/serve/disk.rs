//! Disk space for the spool: how much a job's outputs will take, how much
//! the file system has, and whether an error means it ran out.
//!
//! A full disk (or quota) is not the input's fault and passes: the service
//! puts the job back in the queue and waits for space instead of failing
//! it (see `service`).

use std::path::Path;

use crate::config::Config;

/// Space on the file system holding a folder, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Free to this (unprivileged) process now.
    pub available: u64,
    /// What an unprivileged process could have on the empty file system:
    /// its size less the blocks reserved for root.
    pub(crate) usable_when_empty: u64,
}

/// The space on the file system that holds `folder`.
pub fn space(folder: &Path) -> std::io::Result<Space> {
    let stat = nix::sys::statvfs::statvfs(folder).map_err(std::io::Error::from)?;
    let fragment = stat.fragment_size() as u64;
    let reserved = (stat.blocks_free() as u64).saturating_sub(stat.blocks_available() as u64);
    Ok(Space {
        available: (stat.blocks_available() as u64).saturating_mul(fragment),
        usable_when_empty: (stat.blocks() as u64)
            .saturating_sub(reserved)
            .saturating_mul(fragment),
    })
}

/// Whether `error`, or any error it came from, is a full disk or an
/// exhausted quota.
pub(crate) fn is_disk_full(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(io_is_disk_full)
    })
}

/// Whether one I/O error is a full disk (ENOSPC) or quota (EDQUOT).
pub(crate) fn io_is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT
    ) || matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Characters of text per second of speech, taken low (a slow voice, many
/// short sentences with pauses between them) so the estimate errs large.
const CHARS_PER_SPEECH_SECOND: f64 = 10.0;

/// Report bytes per second of narration (its trace of levels) and fixed.
const REPORT_BYTES_PER_SECOND: f64 = 400.0;
const REPORT_BYTES_FIXED: f64 = 64.0 * 1024.0;

/// What a job of `input_bytes` of text needs on the spool's file system
/// while it runs: the WAV (16-bit at the mix's rate and channels), its
/// report, and a quarter again for error.
pub(crate) fn estimate_output_bytes(input_bytes: u64, config: &Config) -> u64 {
    let rate = config.speech.rate.max(0.25) as f64;
    let speech_s = input_bytes as f64 / CHARS_PER_SPEECH_SECOND / rate;
    let seconds = speech_s + config.mix.pre_roll_s + config.mix.tail_s;
    let wav = seconds * f64::from(config.mix.output_rate) * f64::from(config.mix.channels) * 2.0;
    let report = REPORT_BYTES_FIXED + seconds * REPORT_BYTES_PER_SECOND;
    ((wav + report) * 1.25).ceil() as u64
}

/// Bytes in a human unit, as `vivid status` and the logs say it.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= 1024.0 * MIB {
        format!("{:.1} GiB", bytes as f64 / 1024.0 / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigFile, ConfigSource, DefaultDirs};

    fn config() -> Config {
        Config::resolve(
            ConfigSource::Defaults,
            ConfigFile::default(),
            &DefaultDirs {
                data: "/tmp/vivid-test".into(),
            },
        )
    }

    #[test]
    fn full_disk_is_found_through_the_chain() {
        let full = std::io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let wrapped = anyhow::Error::new(full).context("writing the WAV");
        assert!(is_disk_full(&wrapped));
        let quota = std::io::Error::from_raw_os_error(nix::libc::EDQUOT);
        assert!(is_disk_full(&anyhow::Error::new(quota).context("x")));
        let denied = std::io::Error::from_raw_os_error(nix::libc::EACCES);
        assert!(!is_disk_full(&anyhow::Error::new(denied).context("x")));
        assert!(!is_disk_full(&anyhow::anyhow!("No space left on device")));
    }

    #[test]
    fn estimate_grows_with_the_text_and_the_format() {
        let mut config = config();
        let small = estimate_output_bytes(1_000, &config);
        let large = estimate_output_bytes(10_000, &config);
        // 1000 characters: ~100 s of speech + 2.5 s at 48 kHz stereo
        // 16-bit is ~19.7 MB, with the margin about 25 MB.
        assert!((20_000_000..40_000_000).contains(&small), "{small}");
        assert!(large > 8 * small, "{large} vs {small}");
        config.mix.channels = 1;
        assert!(estimate_output_bytes(1_000, &config) < small * 6 / 10);
    }

    #[test]
    fn space_of_a_real_folder() {
        let here = space(Path::new("/")).unwrap();
        assert!(here.usable_when_empty >= here.available);
        assert!(here.usable_when_empty > 0);
    }
}
