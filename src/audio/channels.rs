//! Channel mapping: planar channels interleaved into the channel count a
//! file or a device takes.

/// Interleaves planar channels into a device's channel count: the same
/// channels as they are; a mono file on every channel; more channels
/// than the device takes mixed down (a stereo narration on a mono
/// speaker: left and right averaged); channels the file lacks silent.
pub(crate) fn to_device_channels(planar: &[Vec<f32>], device_channels: usize) -> Vec<f32> {
    let frames = planar.first().map_or(0, Vec::len);
    let file_channels = planar.len();
    let mut out = Vec::with_capacity(frames * device_channels);
    for i in 0..frames {
        if device_channels == 1 {
            out.push(planar.iter().map(|c| c[i]).sum::<f32>() / file_channels.max(1) as f32);
            continue;
        }
        for d in 0..device_channels {
            out.push(match file_channels {
                1 => planar[0][i],
                n if d < n => planar[d][i],
                _ => 0.0,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_device_channels;

    #[test]
    fn channels_map_to_the_device() {
        let stereo = vec![vec![1.0, 0.5], vec![0.0, -0.5]];
        // Stereo on a mono device: left and right averaged.
        assert_eq!(to_device_channels(&stereo, 1), vec![0.5, 0.0]);
        // As it is on a stereo device; silent extra channels on a wider one.
        assert_eq!(to_device_channels(&stereo, 2), vec![1.0, 0.0, 0.5, -0.5]);
        assert_eq!(
            to_device_channels(&stereo, 4),
            vec![1.0, 0.0, 0.0, 0.0, 0.5, -0.5, 0.0, 0.0]
        );
        // Mono on every channel.
        assert_eq!(to_device_channels(&[vec![0.25]], 2), vec![0.25, 0.25]);
    }
}
