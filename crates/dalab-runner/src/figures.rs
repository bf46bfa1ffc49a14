//! The DANN paper's Figure 2 for a trained model on 2-d inputs (JMLR 2016, §5.1.1): left, the input plane shaded
//! by the predicted class with the source (coloured by label) and target samples; right, the first two principal
//! components of the model's features of both domains (source ○, target ×, coloured by label), where DANN makes
//! the domains overlap. The data come from the caller (`dalab report --boundaries`); this module only draws.

use crate::{Error, Result};
use std::path::Path;

/// A labelled 2-d point.
pub type Point = (f64, f64, i64);

/// What one figure shows.
#[derive(Debug, Clone)]
pub struct BoundaryFigure {
    pub title: String,
    /// The input plane: `x` and `y` ranges and the predicted class with its probability at each of `n × n` cells
    /// (row-major, `y` outer).
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub n: usize,
    pub cells: Vec<(i64, f64)>,
    pub source: Vec<Point>,
    pub target: Vec<Point>,
    /// The features' first two principal components, source then target.
    pub pca_source: Vec<Point>,
    pub pca_target: Vec<Point>,
    /// Fraction of the features' variance the two components hold.
    pub pca_explained: f64,
}

fn class_color(c: i64) -> plotters::style::RGBColor {
    const COLORS: [(u8, u8, u8); 6] =
        [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75)];
    let (r, g, b) = COLORS[c.rem_euclid(COLORS.len() as i64) as usize];
    plotters::style::RGBColor(r, g, b)
}

fn range(points: impl Iterator<Item = (f64, f64)>) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let pad = |a: f64, b: f64| {
        let m = 0.05 * (b - a).max(1e-9);
        (a - m, b + m)
    };
    (pad(x0, x1), pad(y0, y1))
}

/// Draws `fig` as a 1400 × 640 PNG at `path`.
pub fn draw_boundary(fig: &BoundaryFigure, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    crate::report::register_font()?;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1400, 640)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&fig.title, ("sans-serif", 22))?;
        let (left, right) = root.split_horizontally(700);
        // Left: the decision regions and both samples.
        let mut chart = ChartBuilder::on(&left)
            .caption("input space: predicted class (shade = confidence)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(40)
            .build_cartesian_2d(fig.x_range.0..fig.x_range.1, fig.y_range.0..fig.y_range.1)?;
        chart.configure_mesh().disable_mesh().draw()?;
        let (dx, dy) = ((fig.x_range.1 - fig.x_range.0) / fig.n as f64, (fig.y_range.1 - fig.y_range.0) / fig.n as f64);
        chart.draw_series(fig.cells.iter().enumerate().map(|(i, &(c, p))| {
            let (gx, gy) = ((i % fig.n) as f64, (i / fig.n) as f64);
            let (x, y) = (fig.x_range.0 + gx * dx, fig.y_range.0 + gy * dy);
            Rectangle::new([(x, y), (x + dx, y + dy)], class_color(c).mix(0.12 + 0.3 * p).filled())
        }))?;
        chart
            .draw_series(fig.source.iter().map(|&(x, y, c)| Circle::new((x, y), 3, class_color(c).filled())))?
            .label("source (coloured by label)")
            .legend(|(x, y)| Circle::new((x, y), 3, BLACK.filled()));
        chart
            .draw_series(fig.target.iter().map(|&(x, y, _)| Cross::new((x, y), 3, BLACK.mix(0.7))))?
            .label("target (unlabelled)")
            .legend(|(x, y)| Cross::new((x, y), 3, BLACK));
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
        // Right: PCA of the features.
        let ((px0, px1), (py0, py1)) = range(fig.pca_source.iter().chain(&fig.pca_target).map(|&(x, y, _)| (x, y)));
        let mut chart = ChartBuilder::on(&right)
            .caption(format!("features: PCA ({:.0}% of the variance)", 100.0 * fig.pca_explained), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(40)
            .build_cartesian_2d(px0..px1, py0..py1)?;
        chart.configure_mesh().disable_mesh().draw()?;
        chart
            .draw_series(
                fig.pca_source.iter().map(|&(x, y, c)| Circle::new((x, y), 3, class_color(c).stroke_width(1))),
            )?
            .label("source")
            .legend(|(x, y)| Circle::new((x, y), 3, BLACK.stroke_width(1)));
        chart
            .draw_series(fig.pca_target.iter().map(|&(x, y, c)| Cross::new((x, y), 3, class_color(c))))?
            .label("target (coloured by its true label, unseen in training)")
            .legend(|(x, y)| Cross::new((x, y), 3, BLACK));
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Other(format!("{}: cannot draw the figure: {e}", path.display())))
}
