//! Latency CDFs: taken from hdrhistograms, carried between processes as one text line, and
//! drawn as SVG (plotters' SVG backend) next to the JSON reports of the demo and `bench edge`.
//!
//! Invariants: a CDF's points are sorted by quantile, their latencies never decrease, and the
//! last point is the histogram's maximum (quantile 1); an empty histogram gives no points; the
//! SVG's latency axis is logarithmic and spans every series drawn.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Where the demo and `bench edge` write their reports by default (relative to the current
/// directory).
pub const REPORT_DIR: &str = "sekai-reports";

/// Writes `json` to `<dir>/<stem>.json` and the CDF plot of `series` to
/// `<dir>/<stem>-latency-cdf.svg` (creating `dir`); returns both paths.
pub fn write_report(
    dir: &Path,
    stem: &str,
    json: &str,
    title: &str,
    series: &[Cdf],
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let json_path = dir.join(format!("{stem}.json"));
    std::fs::write(&json_path, format!("{json}\n"))
        .map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    let svg_path = dir.join(format!("{stem}-latency-cdf.svg"));
    write_cdf_svg(&svg_path, title, series)?;
    Ok((json_path, svg_path))
}

/// One series of a CDF plot: (latency in microseconds, fraction of samples at or below it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cdf {
    /// The legend entry.
    pub label: String,
    /// The points, by increasing quantile.
    pub points: Vec<(u64, f64)>,
}

/// The quantiles a CDF is sampled at: every percent, then finer in the tail, then the maximum.
fn quantiles() -> Vec<f64> {
    // In ten-thousandths, so every quantile is the double nearest a short decimal.
    let tenths_of_bp = (0..9_900)
        .step_by(100)
        .chain((9_900..9_990).step_by(10))
        .chain(9_990..=10_000);
    tenths_of_bp.map(|n| f64::from(n) / 10_000.0).collect()
}

impl Cdf {
    /// The CDF of a histogram of microseconds.
    pub fn of(label: impl Into<String>, histogram: &Histogram<u64>) -> Self {
        let points = if histogram.is_empty() {
            Vec::new()
        } else {
            quantiles()
                .into_iter()
                .map(|q| (histogram.value_at_quantile(q), q))
                .collect()
        };
        Self {
            label: label.into(),
            points,
        }
    }

    /// The points as one JSON array `[[us, q], ...]` (the label is not included).
    pub fn points_json(&self) -> String {
        let points: Vec<String> = self
            .points
            .iter()
            .map(|(us, q)| format!("[{us},{q}]"))
            .collect();
        format!("[{}]", points.join(","))
    }

    /// Parses [`Cdf::points_json`]'s output under `label`; `None` when it is not such an array.
    pub fn from_points_json(label: impl Into<String>, json: &str) -> Option<Self> {
        let points: Vec<(u64, f64)> = serde_json::from_str(json.trim()).ok()?;
        Some(Self {
            label: label.into(),
            points,
        })
    }
}

/// Draws `series` as a CDF (latency in ms on a log axis, fraction of inputs) into an SVG file.
/// Series without points are left out; with none at all the plot says so in its title.
pub fn write_cdf_svg(path: &Path, title: &str, series: &[Cdf]) -> Result<(), String> {
    let drawn: Vec<&Cdf> = series.iter().filter(|s| !s.points.is_empty()).collect();
    let ms = |us: u64| (us.max(1) as f64) / 1e3;
    let lo = drawn
        .iter()
        .flat_map(|s| s.points.iter().map(|p| ms(p.0)))
        .fold(f64::INFINITY, f64::min);
    let hi = drawn
        .iter()
        .flat_map(|s| s.points.iter().map(|p| ms(p.0)))
        .fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo * 0.9, hi * 1.1)
    } else {
        (0.01, 1_000.0)
    };
    let caption = if drawn.is_empty() {
        format!("{title} (no samples)")
    } else {
        title.to_string()
    };
    let error = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0f64)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("fraction of inputs at or below")
        .draw()
        .map_err(|e| error(&e))?;
    for (index, cdf) in drawn.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                cdf.points.iter().map(|(us, q)| (ms(*us), *q)),
                color.stroke_width(2),
            ))
            .map_err(|e| error(&e))?
            .label(cdf.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if !drawn.is_empty() {
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|e| error(&e))?;
    }
    root.present().map_err(|e| error(&e))?;
    Ok(())
}

/// Draws the series' legend in a framed box at `position`.
fn draw_legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
}

/// Draws `series` (x in minutes, each in its own unit) as lines into an SVG file.
pub fn write_timeline_svg(
    path: &Path,
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let ys = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let x_hi = xs.fold(1.0f64, f64::max);
    let y_hi = ys.fold(1.0f64, f64::max) * 1.1;
    let error = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_hi, 0f64..y_hi)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .draw()
        .map_err(|e| error(&e))?;
    for (index, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| error(&e))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(|e| error(&e))?;
    root.present().map_err(|e| error(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::bots::histogram();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn a_cdf_rises_to_the_maximum() {
        let cdf = Cdf::of("x", &histogram_of((1..=1_000).map(|i| i * 10)));
        assert!(cdf
            .points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        let (last_us, last_q) = *cdf.points.last().unwrap();
        assert_eq!(last_q, 1.0);
        assert!((9_990..=10_010).contains(&last_us), "{last_us}");
        assert!(Cdf::of("empty", &crate::bots::histogram())
            .points
            .is_empty());
    }

    #[test]
    fn points_survive_their_json() {
        let cdf = Cdf::of("a", &histogram_of([5, 50, 500]));
        let back = Cdf::from_points_json("a", &cdf.points_json()).unwrap();
        assert_eq!(back, cdf);
        assert_eq!(Cdf::from_points_json("a", "not json"), None);
    }

    /// The contents of an SVG's `<text>` elements.
    fn svg_texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>')?.1.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .collect()
    }

    #[test]
    fn a_report_is_json_beside_its_plot() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reports");
        let series = [Cdf::of("x", &histogram_of([10, 20]))];
        let (json, svg) = write_report(&out, "demo", "{\"a\":1}", "t", &series).unwrap();
        assert_eq!(json, out.join("demo.json"));
        assert_eq!(svg, out.join("demo-latency-cdf.svg"));
        assert_eq!(std::fs::read_to_string(json).unwrap(), "{\"a\":1}\n");
        assert!(svg_texts(&std::fs::read_to_string(svg).unwrap()).contains(&"x"));
    }

    #[test]
    fn the_svg_has_one_line_per_series_and_its_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdf.svg");
        let series = [
            Cdf::of("fast", &histogram_of((1..500).map(|i| i * 3))),
            Cdf::of("slow", &histogram_of((1..500).map(|i| i * 40))),
            Cdf::of("none", &crate::bots::histogram()),
        ];
        write_cdf_svg(&path, "test latency", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        let texts = svg_texts(&svg);
        for expected in ["test latency", "fast", "slow"] {
            assert!(texts.contains(&expected), "{expected} not in {texts:?}");
        }
        assert!(!texts.contains(&"none"), "an empty series has no legend");
        // Each series is one wide polyline and one legend mark; axes are 1 px wide.
        assert_eq!(svg.matches("stroke-width=\"2\" points").count(), 4);
    }
}
