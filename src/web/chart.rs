//! Charts drawn by the server as inline SVG, shared by the health pages and the reports: every chart is an
//! `<svg role="img">` labelled by its `<title>` and `<desc>`, every text in it escaped, every number formatted here;
//! pages put the same numbers in a data table beside it.

use crate::i18n::Texts;

/// Escapes text for SVG (and HTML) content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Opens an accessible chart: `<svg role="img" aria-labelledby=…>` with its `<title>` and `<desc>`.
pub fn svg_open(id: &str, title: &str, desc: &str, width: f64, height: f64, class: &str) -> String {
    format!(
        "<svg class=\"{class}\" role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"100%\" \
         preserveAspectRatio=\"none\" aria-labelledby=\"{id}-title {id}-desc\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(title),
        escape(desc)
    )
}

/// An instant (unix seconds) as a time axis reads it, in the operator's zone: `dd.mm HH:MM`, or `HH:MM` when
/// `with_day` is false.
pub fn local_tick(zone: &jiff::tz::TimeZone, unix_seconds: i64, with_day: bool) -> String {
    match jiff::Timestamp::from_second(unix_seconds) {
        Ok(at) => {
            let local = zone.to_datetime(at);
            if with_day { local.strftime("%d.%m %H:%M").to_string() } else { local.strftime("%H:%M").to_string() }
        }
        Err(_) => unix_seconds.to_string(),
    }
}

/// The ticks of a time axis over points starting at `starts` (unix seconds, oldest first), in the operator's zone:
/// at most `max_ticks` points evenly spread, first and last included, each `(index, label)`; the day is written at
/// the first tick and wherever it changes.
pub fn time_ticks(zone: &jiff::tz::TimeZone, starts: &[i64], max_ticks: usize) -> Vec<(usize, String)> {
    let n = starts.len();
    if n == 0 || max_ticks == 0 {
        return Vec::new();
    }
    let count = n.min(max_ticks.max(2));
    let mut indices: Vec<usize> =
        if count <= 1 { vec![0] } else { (0..count).map(|k| k * (n - 1) / (count - 1)).collect() };
    indices.dedup();
    let day = |i: usize| crate::store::calendar::local_day(zone, starts[i]).unwrap_or_default();
    let mut previous_day = String::new();
    indices
        .into_iter()
        .map(|i| {
            let d = day(i);
            let label = local_tick(zone, starts[i], d != previous_day);
            previous_day = d;
            (i, label)
        })
        .collect()
}

const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// Requests per period as bars, the errors among them drawn over each bar: `(label, requests, errors)`.
pub fn requests_chart(t: &Texts, id: &str, periods: &[(String, u64, u64)]) -> String {
    let total: u64 = periods.iter().map(|p| p.1).sum();
    let errors: u64 = periods.iter().map(|p| p.2).sum();
    let max = periods.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let desc = if periods.is_empty() {
        t.get("chart.no_data").to_string()
    } else {
        format!(
            "{} {}; {}: {total}; {}: {errors}; max {max}",
            periods.len(),
            t.get("chart.periods"),
            t.get("chart.requests"),
            t.get("chart.errors")
        )
    };
    let mut out = svg_open(id, t.get("chart.requests_title"), &desc, W, H, "chart");
    let base = H - BOTTOM;
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"currentColor\" stroke-opacity=\".4\"/>\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"currentColor\" stroke-opacity=\".4\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        W - 8.0,
        LEFT - 4.0,
        TOP + 10.0,
        LEFT - 4.0,
    ));
    match (periods.first(), periods.last()) {
        (Some(first), Some(last)) => out.push_str(&format!(
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"11\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            H - 6.0,
            escape(&first.0),
            W - 8.0,
            H - 6.0,
            escape(&last.0),
        )),
        _ => out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            W / 2.0,
            H / 2.0,
            escape(t.get("chart.no_data")),
        )),
    }
    if periods.len() == 1 {
        // One period draws one bar, no trend: the chart says so instead of looking like a broken picture.
        out.push_str(&format!(
            "<text class=\"few\" x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            W / 2.0,
            TOP + 14.0,
            escape(t.get("chart.one_period")),
        ));
    }
    let n = periods.len().max(1);
    let slot = (W - LEFT - 8.0) / n as f64;
    // Bars no wider than 48 units: a single period is a bar, not a filled plot.
    let width = (slot * 0.8).clamp(1.0, 48.0);
    let height_of = |v: u64| (H - BOTTOM - TOP) * v as f64 / max as f64;
    for (i, (label, requests, errors)) in periods.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        let (h, e) = (height_of(*requests), height_of(*errors));
        out.push_str(&format!(
            "<rect class=\"ok\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{h:.1}\"><title>{}: {requests}</title></rect>",
            base - h,
            escape(label)
        ));
        if *errors > 0 {
            out.push_str(&format!(
                "<rect class=\"bad\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{e:.1}\"/>",
                base - e
            ));
        }
        if periods.len() <= 3 {
            // With few bars each one carries its label and value.
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{requests}</text>",
                x + width / 2.0,
                (base - h - 4.0).max(TOP + 28.0),
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// One horizontal bar per item, `(label, value, reference)`: the value drawn as a bar (a missing value as none), the
/// reference (an SLA) as a mark across the bar's row; `unit` follows every number in the description.
pub fn bars_chart(
    t: &Texts,
    id: &str,
    title: &str,
    unit: &str,
    items: &[(String, Option<f64>, Option<f64>)],
) -> String {
    let row = 22.0;
    let label_width = 180.0;
    let height = (row * items.len() as f64).max(row * 2.0) + 8.0;
    let max = items.iter().flat_map(|i| [i.1, i.2]).flatten().fold(0.0_f64, f64::max).max(1.0);
    let desc = if items.is_empty() {
        t.get("chart.no_data").to_string()
    } else {
        items
            .iter()
            .map(|(label, value, reference)| {
                let value = value.map_or_else(|| "—".to_string(), |v| format!("{v:.2} {unit}"));
                match reference {
                    Some(r) => format!("{label}: {value} ({} {r:.0} {unit})", t.get("dashboard.chart.reference")),
                    None => format!("{label}: {value}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut out = svg_open(id, title, &desc, W, height, "chart");
    if items.is_empty() {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            W / 2.0,
            height / 2.0,
            escape(t.get("chart.no_data")),
        ));
    }
    let span = W - label_width - 80.0;
    for (i, (label, value, reference)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            label_width - 6.0,
            y + 14.0,
            escape(label)
        ));
        if let Some(v) = value {
            let w = (span * v / max).max(1.0);
            let over = reference.is_some_and(|r| *v > r);
            out.push_str(&format!(
                "<rect class=\"{}\" x=\"{label_width}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{}: {v:.2} {}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{v:.2}</text>",
                if over { "bad" } else { "ok" },
                y + 3.0,
                row - 8.0,
                escape(label),
                escape(unit),
                label_width + w + 4.0,
                y + 14.0,
            ));
        }
        if let Some(r) = reference {
            let x = label_width + span * r / max;
            out.push_str(&format!(
                "<line class=\"reference\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"currentColor\" stroke-width=\"2\" stroke-dasharray=\"3 2\"/>",
                y + 1.0,
                y + row - 3.0,
            ));
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    #[test]
    fn requests_chart_is_accessible_and_escaped() {
        let t = Texts { lang: Lang::En };
        let svg = requests_chart(&t, "c", &[("<d1>".into(), 10, 2), ("d2".into(), 4, 0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("role=\"img\"") && svg.contains("<title id=\"c-title\">") && svg.contains("<desc id="));
        assert!(svg.contains("&lt;d1&gt;") && !svg.contains("<d1>"));
        assert!(svg.contains("2 periods") && svg.contains("14") && svg.contains("class=\"bad\""));
        assert!(requests_chart(&t, "e", &[]).contains(t.get("chart.no_data")));
        let one = requests_chart(&t, "o", &[("2026-12-03 10:00".into(), 7, 0)]);
        assert!(one.contains(t.get("chart.one_period")) && one.contains("width=\"48.0\""), "{one}");
    }

    #[test]
    fn time_ticks_are_local_and_name_the_day_where_it_changes() {
        let almaty = crate::store::calendar::default_time_zone();
        // 2026-12-03 17:00 UTC is 22:00 in Almaty; six hourly points cross local midnight.
        let starts: Vec<i64> = (0..6).map(|i| 1_796_317_200 + i * 3600).collect();
        let ticks = time_ticks(&almaty, &starts, 6);
        let labels: Vec<&str> = ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["03.12 22:00", "23:00", "04.12 00:00", "01:00", "02:00", "03:00"]);
        assert_eq!(time_ticks(&almaty, &starts, 3).iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2, 5]);
        assert_eq!(time_ticks(&almaty, &starts[..1], 6), [(0, "03.12 22:00".to_string())]);
    }

    #[test]
    fn bars_chart_marks_values_over_their_reference() {
        let t = Texts { lang: Lang::En };
        let items = [("<A>".to_string(), Some(640.0), Some(500.0)), ("B".to_string(), Some(120.0), Some(500.0))];
        let svg = bars_chart(&t, "p", "p95", "ms", &items);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && svg.contains("role=\"img\""), "{svg}");
        assert!(svg.contains("&lt;A&gt;: 640.00 ms") && svg.matches("class=\"bad\"").count() == 1, "{svg}");
        assert!(bars_chart(&t, "e", "x", "%", &[]).contains(t.get("chart.no_data")));
    }
}
