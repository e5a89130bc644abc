//! A picture of a mix (plotters, PNG): speech and background levels, the
//! background's gain, scene changes with their captions and the loudness
//! target, so a technician can see why a mix sounds wrong and which
//! setting to change.

use std::path::Path;

use plotters::prelude::*;

use super::{MixReport, TRACE_HOP_S};

/// The font the picture's text is drawn in (Debian: fonts-dejavu-core).
pub(crate) const FONT_PATHS: &[&str] = &[
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
    draw_levels(&mut chart, &report.trace).map_err(|e| fail(&e))?;
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

/// One layer of a background as it plays: its level over time.
pub struct LayerTrace {
    pub name: String,
    /// Seconds between values.
    pub hop_s: f64,
    /// Level in dBFS (RMS) per hop.
    pub level_db: Vec<f32>,
}

/// Lowest and highest frequency the spectrogram shows (log axis).
const SPECTROGRAM_HZ: (f32, f32) = (40.0, 20_000.0);

/// A spectrogram of `samples` (interleaved, mixed to mono) as dB per
/// pixel column and row: columns over time, rows from low to high on a
/// log frequency axis.
fn spectrogram(
    samples: &[f32],
    rate: u32,
    channels: u16,
    columns: usize,
    rows: usize,
) -> Vec<Vec<f32>> {
    let channels = usize::from(channels.max(1));
    let mono: Vec<f32> = samples
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    let size = 2048;
    let mut planner = realfft::RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(size);
    let window: Vec<f32> = (0..size)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / size as f32).cos())
        .collect();
    let (mut input, mut output) = (fft.make_input_vec(), fft.make_output_vec());
    let bin_hz = rate as f32 / size as f32;
    let (low, high) = SPECTROGRAM_HZ;
    let row_edges: Vec<usize> = (0..=rows)
        .map(|r| {
            let hz = low * (high / low).powf(r as f32 / rows as f32);
            ((hz / bin_hz) as usize).clamp(1, size / 2)
        })
        .collect();
    let frames_per_column = mono.len() as f64 / columns.max(1) as f64;
    (0..columns)
        .map(|c| {
            // One frame at the middle of each column's stretch.
            let centre = ((c as f64 + 0.5) * frames_per_column) as usize;
            let start = centre.saturating_sub(size / 2);
            for (i, v) in input.iter_mut().enumerate() {
                *v = mono.get(start + i).copied().unwrap_or(0.0) * window[i];
            }
            if fft.process(&mut input, &mut output).is_err() {
                return vec![-120.0; rows];
            }
            (0..rows)
                .map(|r| {
                    let (a, b) = (row_edges[r], row_edges[r + 1].max(row_edges[r] + 1));
                    let power = output[a..b.min(output.len())]
                        .iter()
                        .map(|z| z.norm_sqr())
                        .sum::<f32>()
                        / (b - a) as f32;
                    10.0 * (power / (size as f32 * size as f32 / 4.0))
                        .max(1e-12)
                        .log10()
                })
                .collect()
        })
        .collect()
}

/// Dark blue to yellow through magenta and orange, for 0..1.
fn heat(x: f32) -> RGBColor {
    let x = x.clamp(0.0, 1.0);
    let stops = [
        (0.0, (8.0, 8.0, 40.0)),
        (0.35, (120.0, 30.0, 120.0)),
        (0.7, (240.0, 110.0, 40.0)),
        (1.0, (255.0, 240.0, 150.0)),
    ];
    let k = stops
        .iter()
        .rposition(|(at, _)| x >= *at)
        .unwrap_or(0)
        .min(stops.len() - 2);
    let ((a, ca), (b, cb)) = (stops[k], stops[k + 1]);
    let t = (x - a) / (b - a);
    let mix = |p: f32, q: f32| (p + (q - p) * t) as u8;
    RGBColor(mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2))
}

/// Draws a background into `path` (PNG, 1600 x 900): its spectrogram
/// (log frequency) above, and below one row per layer showing when and
/// how loud it plays, so a technician can see what the scene holds.
pub fn draw_background(
    path: &Path,
    samples: &[f32],
    rate: u32,
    channels: u16,
    title: &str,
    layers: &[LayerTrace],
) -> Result<(), String> {
    register_font()?;
    let fail = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let frames = samples.len() / usize::from(channels.max(1));
    let duration = (frames as f32 / rate as f32).max(0.1);
    let root = BitMapBackend::new(path, (1600, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(520);
    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .caption(title, ("sans-serif", 20))
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(
            0f32..duration,
            (SPECTROGRAM_HZ.0..SPECTROGRAM_HZ.1).log_scale(),
        )
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("Hz")
        .label_style(("sans-serif", 14))
        .disable_mesh()
        .draw()
        .map_err(|e| fail(&e))?;
    let (columns, rows) = (400usize, 120usize);
    let cells = spectrogram(samples, rate, channels, columns, rows);
    let ceiling = cells.iter().flatten().copied().fold(-120f32, f32::max);
    let (low, high) = SPECTROGRAM_HZ;
    let column_s = duration / columns as f32;
    chart
        .draw_series(cells.iter().enumerate().flat_map(|(c, column)| {
            column.iter().enumerate().map(move |(r, db)| {
                let f0 = low * (high / low).powf(r as f32 / rows as f32);
                let f1 = low * (high / low).powf((r + 1) as f32 / rows as f32);
                let t0 = c as f32 * column_s;
                // 70 dB of range under the loudest cell.
                let shade = heat((db - ceiling + 70.0) / 70.0);
                Rectangle::new([(t0, f0), (t0 + column_s, f1)], shade.filled())
            })
        }))
        .map_err(|e| fail(&e))?;

    draw_layer_rows(&bottom, layers, duration).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The rows under a background's spectrogram: one a layer, its level over
/// time as a filled area (60 dB of range) and its name.
fn draw_layer_rows(
    bottom: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    layers: &[LayerTrace],
    duration: f32,
) -> Result<(), DrawError> {
    let rows_area = bottom.margin(5, 15, 85, 15);
    let count = layers.len().max(1);
    let mut layer_chart = ChartBuilder::on(&rows_area)
        .x_label_area_size(30)
        .y_label_area_size(0)
        .build_cartesian_2d(0f32..duration, 0f32..count as f32)?;
    layer_chart
        .configure_mesh()
        .x_desc("seconds")
        .label_style(("sans-serif", 14))
        .disable_y_mesh()
        .disable_y_axis()
        .draw()?;
    let palette = [
        RGBColor(30, 110, 200),
        RGBColor(40, 160, 80),
        RGBColor(210, 110, 20),
        RGBColor(170, 40, 150),
        RGBColor(200, 40, 40),
        RGBColor(90, 90, 90),
        RGBColor(20, 150, 160),
    ];
    for (index, layer) in layers.iter().enumerate() {
        // Row `index` from the top: a filled level, 60 dB of range.
        let base = (count - 1 - index) as f32;
        let colour = palette[index % palette.len()];
        let points: Vec<(f32, f32)> = layer
            .level_db
            .iter()
            .enumerate()
            .map(|(i, db)| {
                let height = ((db + 60.0) / 60.0).clamp(0.0, 1.0) * 0.85;
                ((i as f64 * layer.hop_s) as f32, base + height)
            })
            .collect();
        layer_chart
            .draw_series(AreaSeries::new(points, base, colour.mix(0.5)).border_style(colour))?;
        layer_chart.draw_series(std::iter::once(Text::new(
            layer.name.clone(),
            (duration * 0.005, base + 0.9),
            ("sans-serif", 15).into_font().color(&BLACK),
        )))?;
    }
    Ok(())
}

/// The chart the mix's levels are drawn on.
type LevelChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf32, plotters::coord::types::RangedCoordf32>,
>;
/// What drawing on the picture fails with.
type DrawError = DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

/// The mix's speech and background levels and the background's ducking
/// gain over time.
fn draw_levels(chart: &mut LevelChart<'_, '_>, trace: &super::MixTrace) -> Result<(), DrawError> {
    draw_level_line(
        chart,
        &trace.speech_db,
        BLUE,
        "speech level (dBFS, RMS per 0.1 s)",
    )?;
    if !trace.background_db.is_empty() {
        draw_level_line(
            chart,
            &trace.background_db,
            GREEN,
            "background level in the mix (dBFS)",
        )?;
        draw_level_line(
            chart,
            &trace.background_gain_db,
            RGBColor(230, 120, 0),
            "background ducking gain (dB below its highest)",
        )?;
    }
    Ok(())
}

/// One level trace (a value per [`TRACE_HOP_S`], in dB) as a line with
/// its legend entry.
fn draw_level_line(
    chart: &mut LevelChart<'_, '_>,
    values: &[f32],
    colour: RGBColor,
    label: &str,
) -> Result<(), DrawError> {
    let points: Vec<(f32, f32)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f32 * TRACE_HOP_S as f32, v.clamp(-70.0, 10.0)))
        .collect();
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    Ok(())
}
