//! A picture of a mix (plotters, PNG): speech and background levels, the
//! background's gain, scene changes with their captions and the loudness
//! target, so a technician can see why a mix sounds wrong and which
//! setting to change.

use std::path::Path;

use plotters::prelude::*;

use super::{MixReport, TRACE_HOP_S};

/// The font the picture's text is drawn in (Debian: fonts-dejavu-core).
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// A scene change to mark: where, and its caption.
pub struct SceneMark<'a> {
    pub at_s: f64,
    pub caption: &'a str,
}

fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONT_PATHS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| {
                    format!(
                        "no font for the picture's text ({}; install fonts-dejavu-core)",
                        FONT_PATHS[0]
                    )
                })?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "the font file is not a usable TrueType font".to_owned())
        })
        .clone()
}

/// Draws the mix into `path` (PNG, 1600 x 600).
pub fn draw(
    path: &Path,
    report: &MixReport,
    scenes: &[SceneMark<'_>],
    target_lufs: f64,
) -> Result<(), String> {
    register_font()?;
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let duration = report.duration_s as f32;
    let root = BitMapBackend::new(path, (1600, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .caption(
            format!(
                "{:.1} LUFS (target {target_lufs:.0}), true peak {:.1} dBTP, ducking {:?}{}",
                report.integrated_lufs,
                report.true_peak_dbtp,
                report.ducking,
                report
                    .speech_over_background_lu
                    .map(|d| format!(", speech {d:.1} LU over the background"))
                    .unwrap_or_default()
            ),
            ("sans-serif", 20),
        )
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f32..duration.max(0.1), -70f32..10f32)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("dB")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| fail(&e))?;
    let series = |values: &[f32]| -> Vec<(f32, f32)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f32 * TRACE_HOP_S as f32, v.clamp(-70.0, 10.0)))
            .collect()
    };
    let trace = &report.trace;
    chart
        .draw_series(LineSeries::new(
            series(&trace.speech_db),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label("speech level (dBFS, RMS per 0.1 s)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if !trace.background_db.is_empty() {
        chart
            .draw_series(LineSeries::new(
                series(&trace.background_db),
                GREEN.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label("background level in the mix (dBFS)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                series(&trace.background_gain_db),
                RGBColor(230, 120, 0).stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label("background ducking gain (dB below its highest)")
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 20, y)],
                    RGBColor(230, 120, 0).stroke_width(2),
                )
            });
    }
    let target = target_lufs as f32;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, target), (duration, target)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| fail(&e))?
        .label("loudness target (LUFS)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    for scene in scenes {
        let x = scene.at_s as f32;
        chart
            .draw_series(LineSeries::new(
                vec![(x, -70.0), (x, 10.0)],
                RED.mix(0.6).stroke_width(1),
            ))
            .map_err(|e| fail(&e))?;
        let caption: String = scene.caption.chars().take(70).collect();
        chart
            .draw_series(std::iter::once(Text::new(
                caption,
                (x + 0.1, 7.0),
                ("sans-serif", 14).into_font().color(&RED),
            )))
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
