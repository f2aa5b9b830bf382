//! The console's dashboard: this node's own figures, drawn on the server as SVG charts (no
//! script, no style attributes: the page's policy allows neither inline).

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use gatehouse_core::GrantType;
use gatehouse_core::service::{FigurePoint, FiguresView, SECOND_POINTS, TEN_SECOND_POINTS};

use super::{Admin, Chrome, ConsoleError};
use crate::WebState;
use crate::pages::render;

/// The plot's size in SVG units. CSS stretches it to the card's width at a fixed height (lines
/// keep their width: `non-scaling-stroke`), and the axis labels are HTML beside it, so text reads
/// the same at 390 px as at 1280 px.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 100.0;
const LEFT: f64 = 0.0;
const RIGHT: f64 = 0.0;
/// Room for a line at the top or bottom edge.
const TOP: f64 = 2.0;
const BOTTOM: f64 = 2.0;

/// One line of a chart, with its colour (a presentation attribute) and legend label.
pub struct Line {
    pub label: String,
    pub colour: &'static str,
    /// The `points` attribute of its polyline.
    pub points: String,
    /// The latest value, for the legend.
    pub latest: u64,
    /// Where the latest point is (`x,y`), marked with a dot: a line of one point shows nothing.
    pub last: Option<String>,
}

/// A horizontal guide with its value.
pub struct Guide {
    pub y: String,
    pub label: String,
}

pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    /// What the chart shows, in words, for those who cannot see it.
    pub summary: String,
    pub lines: Vec<Line>,
    pub guides: Vec<Guide>,
    pub from_label: &'static str,
    pub to_label: &'static str,
    pub empty: bool,
}

pub struct Figure {
    pub label: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "console_dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub figures: Vec<Figure>,
    pub charts: Vec<Chart>,
}

const GRANT_COLOURS: [&str; 4] = ["#1f5fbf", "#1e6b3a", "#b36b00", "#7a3fb3"];

pub async fn dashboard(
    State(state): State<WebState>,
    admin: Admin,
) -> Result<Response, ConsoleError> {
    let view = state.service.figures().view();
    let subscribers = state.service.change_hub().subscribers();
    Ok(render(&DashboardPage {
        chrome: admin.chrome(&state, "dashboard"),
        figures: figures(&view, subscribers),
        charts: charts(&view),
    })
    .into_response())
}

fn figures(view: &FiguresView, subscribers: usize) -> Vec<Figure> {
    let last_minute: u64 = view
        .seconds
        .iter()
        .rev()
        .take(60)
        .map(FigurePoint::issued_total)
        .sum();
    vec![
        Figure {
            label: "Tokens issued, last minute",
            value: last_minute.to_string(),
        },
        Figure {
            label: "Tokens issued since start",
            value: view.issued_since_start.iter().sum::<u64>().to_string(),
        },
        Figure {
            label: "Sign-ins since start",
            value: view.sign_ins_since_start.to_string(),
        },
        Figure {
            label: "Failed sign-ins since start",
            value: view.sign_in_failures_since_start.to_string(),
        },
        Figure {
            label: "Revocation feed subscribers",
            value: subscribers.to_string(),
        },
    ]
}

fn charts(view: &FiguresView) -> Vec<Chart> {
    use gatehouse_core::service::FigurePoint as P;
    let grants: Vec<Series> = GrantType::ALL
        .iter()
        .enumerate()
        .map(|(i, grant)| {
            (
                grant.as_str().to_owned(),
                GRANT_COLOURS[i],
                Box::new(move |p: &P| p.issued[i]) as Box<dyn Fn(&P) -> u64>,
            )
        })
        .collect();
    vec![
        chart(
            "tokens",
            "Tokens issued per second, by grant",
            "the last two minutes",
            &view.seconds,
            SECOND_POINTS,
            grants,
        ),
        chart(
            "sign-ins",
            "Sign-ins and failures per 10 seconds",
            "the last hour",
            &view.ten_seconds,
            TEN_SECOND_POINTS,
            vec![
                (
                    "signed in".into(),
                    "#1e6b3a",
                    Box::new(|p: &P| p.sign_ins) as Box<dyn Fn(&P) -> u64>,
                ),
                (
                    "failed".into(),
                    "#b3261e",
                    Box::new(|p: &P| p.sign_in_failures),
                ),
            ],
        ),
        chart(
            "subscribers",
            "Revocation feed subscribers",
            "the last hour",
            &view.ten_seconds,
            TEN_SECOND_POINTS,
            vec![(
                "subscribers".into(),
                "#1f5fbf",
                Box::new(|p: &P| p.subscribers) as Box<dyn Fn(&P) -> u64>,
            )],
        ),
    ]
}

type Series = (String, &'static str, Box<dyn Fn(&FigurePoint) -> u64>);

/// The smallest of 1, 2, 5 × 10ⁿ at or above `value` (at least 1), so guides read well.
fn nice_ceiling(value: u64) -> u64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= value {
                return step * factor;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// A chart of `points` (oldest first), laid out on a fixed time axis of `capacity` points so the
/// newest is always at the right edge.
fn chart(
    id: &'static str,
    title: &'static str,
    span: &'static str,
    points: &[FigurePoint],
    capacity: usize,
    series: Vec<Series>,
) -> Chart {
    let top = series
        .iter()
        .flat_map(|(_, _, value)| points.iter().map(value))
        .max()
        .unwrap_or(0);
    let ceiling = nice_ceiling(top) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = plot_w / (capacity.max(2) - 1) as f64;
    let offset = capacity.saturating_sub(points.len());
    let lines = series
        .iter()
        .map(|(label, colour, value)| {
            let coordinates: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let x = LEFT + (offset + i) as f64 * step;
                    let y = TOP + plot_h * (1.0 - value(p) as f64 / ceiling);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            Line {
                label: label.clone(),
                colour,
                last: coordinates.last().cloned(),
                points: coordinates.join(" "),
                latest: points.last().map_or(0, value),
            }
        })
        .collect::<Vec<Line>>();
    let guides = [0.0, 0.5, 1.0]
        .iter()
        .map(|fraction| Guide {
            y: format!("{:.1}", TOP + plot_h * (1.0 - fraction)),
            label: format_value(ceiling * fraction),
        })
        .collect();
    let summary = format!(
        "{title} over {span}; latest: {}.",
        lines
            .iter()
            .map(|l| format!("{} {}", l.label, l.latest))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Chart {
        id,
        title,
        summary,
        lines,
        guides,
        from_label: if capacity > 200 {
            "1 hour ago"
        } else {
            "2 minutes ago"
        },
        to_label: "now",
        empty: points.is_empty(),
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_to_readable_values() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(5000), 5000);
        assert_eq!(nice_ceiling(5001), 10000);
    }

    #[test]
    fn the_newest_point_is_at_the_right_edge_and_the_page_renders() {
        let points = [
            FigurePoint {
                at: 1,
                issued: [0, 4, 0, 0],
                ..FigurePoint::default()
            },
            FigurePoint {
                at: 2,
                issued: [0, 2, 0, 0],
                ..FigurePoint::default()
            },
        ];
        let view = FiguresView {
            seconds: points.to_vec(),
            ..FiguresView::default()
        };
        let charts = charts(&view);
        let tokens = &charts[0];
        let cc = &tokens.lines[1];
        assert_eq!(cc.label, "client_credentials");
        assert_eq!(cc.latest, 2);
        let last = cc.points.split(' ').next_back().unwrap();
        assert_eq!(
            last,
            format!(
                "{:.1},{:.1}",
                WIDTH - RIGHT,
                TOP + (HEIGHT - TOP - BOTTOM) * 0.6
            )
        );
        assert!(charts[1].empty);
        let page = DashboardPage {
            chrome: Chrome {
                csrf: "t".into(),
                username: "root".into(),
                section: "dashboard",
            },
            figures: figures(&view, 0),
            charts,
        };
        let html = page.render().unwrap();
        assert!(html.contains("<polyline"), "{html}");
        assert!(!html.contains("style="), "no inline style: {html}");
    }
}
