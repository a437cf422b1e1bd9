//! The marks plotters does not place the way a reader needs: the title and legend in a strip
//! above the plot (so the legend never covers a bar or a line), threshold lines with their
//! classes, zero-height bars, and category labels. Written as plain SVG in `currentColor` or
//! through stylesheet classes, so they follow the page's light or dark theme.

use plotters::style::RGBColor;

use crate::views::escape;

/// Text size of the title, in the chart's own pixels.
pub const TITLE_PX: u32 = 18;
/// Text size of everything else. The chart is drawn [`super::WIDTH`] wide and shrinks with
/// the page: at 420 px wide this still renders at about 12 px.
pub const TEXT_PX: u32 = 16;
/// Height of one legend row.
const ROW_PX: i32 = 24;
/// A bar shorter than this would vanish: it is drawn this tall and labelled with its value.
pub const MIN_BAR_PX: i32 = 3;

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Swatch {
    /// A line in this colour (a series).
    Line(RGBColor),
    /// A filled block in this colour (bars).
    Block(RGBColor),
    /// A dashed line of this stylesheet class (a threshold).
    Dashed(&'static str),
    /// Nothing: a note.
    Note,
}

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its text.
    pub label: String,
    /// Its mark.
    pub swatch: Swatch,
}

/// The strip above the plot: the title on the first row, then the legend entries, wrapped
/// into as many rows as the width needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Strip {
    /// The title.
    pub title: String,
    /// Entries with the (x, middle y) each is drawn at.
    pub entries: Vec<(i32, i32, Entry)>,
    /// Total height: the plot starts below it.
    pub height: i32,
}

/// Width of `text` at [`TEXT_PX`], estimated (no font metrics in a pure function): generous,
/// so entries never run into each other.
pub fn text_width(text: &str) -> i32 {
    (text.chars().count() as f64 * f64::from(TEXT_PX) * 0.6).ceil() as i32
}

/// Lays out the title and `entries` across `width` pixels.
pub fn strip(title: &str, entries: Vec<Entry>, width: u32) -> Strip {
    let width = width as i32;
    let (left, gap, swatch) = (12, 22, 26);
    let mut placed = Vec::new();
    let mut x = left;
    let mut row = 0;
    for e in entries {
        let w = swatch + text_width(&e.label);
        if x > left && x + w > width - left {
            row += 1;
            x = left;
        }
        placed.push((x, ROW_PX + 8 + row * ROW_PX + ROW_PX / 2, e));
        x += w + gap;
    }
    let rows = if placed.is_empty() { 0 } else { row + 1 };
    Strip {
        title: title.to_owned(),
        entries: placed,
        height: ROW_PX + 8 + rows * ROW_PX + 6,
    }
}

impl Strip {
    /// The strip as SVG: `<text class="title">` and `<g class="legend">`.
    pub fn svg(&self) -> String {
        let mut out = format!(
            "<text class=\"title\" x=\"12\" y=\"{}\" font-size=\"{TITLE_PX}\" font-weight=\"600\" font-family=\"sans-serif\" fill=\"currentColor\">{}</text>",
            ROW_PX - 2,
            escape(&self.title)
        );
        if self.entries.is_empty() {
            return out;
        }
        out.push_str("<g class=\"legend\">");
        for (x, y, e) in &self.entries {
            let text_x = match e.swatch {
                Swatch::Note => *x,
                _ => x + 26,
            };
            match e.swatch {
                Swatch::Line(c) => out.push_str(&format!(
                    "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"3\"/>",
                    x + 18,
                    hex(c)
                )),
                Swatch::Block(c) => out.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{}\" width=\"16\" height=\"12\" fill=\"{}\"/>",
                    y - 6,
                    hex(c)
                )),
                Swatch::Dashed(class) => out.push_str(&format!(
                    "<line class=\"{class}\" x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2.5\" stroke-dasharray=\"6 3\"/>",
                    x + 20,
                    fallback(class)
                )),
                Swatch::Note => {}
            }
            out.push_str(&format!(
                "<text x=\"{text_x}\" y=\"{y}\" dy=\"0.35em\" font-size=\"{TEXT_PX}\" font-family=\"sans-serif\" fill=\"currentColor\">{}</text>",
                escape(&e.label)
            ));
        }
        out.push_str("</g>");
        out
    }
}

/// The colour a class-styled mark has where no stylesheet applies (the SVG saved alone).
fn fallback(class: &str) -> &'static str {
    match class {
        "needed" => "#b45309",
        _ => "#dc2626",
    }
}

/// `#rrggbb`.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// A horizontal threshold line from `x0` to `x1` at `y` (backend pixels), with its value in
/// `data-value` and its meaning in a `<title>`.
pub fn threshold(class: &'static str, x0: i32, x1: i32, y: i32, value: f64, label: &str) -> String {
    format!(
        "<line class=\"threshold-line {class}\" data-value=\"{value}\" x1=\"{x0}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2.5\" stroke-dasharray=\"6 3\"><title>{}</title></line>",
        fallback(class),
        escape(label)
    )
}

/// A bar too short to see: a stub [`MIN_BAR_PX`] tall on the axis at `y0`, and its value
/// above it. `None` marks a value the model does not have.
pub fn stub(x0: i32, x1: i32, y0: i32, color: RGBColor, value: Option<f64>) -> String {
    let mid = (x0 + x1) / 2;
    let text = value.map_or_else(|| "n/a".to_owned(), short);
    let bar = if value.is_some() {
        format!(
            "<rect class=\"stub\" x=\"{x0}\" y=\"{}\" width=\"{}\" height=\"{MIN_BAR_PX}\" fill=\"{}\"/>",
            y0 - MIN_BAR_PX,
            (x1 - x0).max(1),
            hex(color)
        )
    } else {
        String::new()
    };
    format!(
        "{bar}<text class=\"value\" x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{}\" font-family=\"sans-serif\" fill=\"currentColor\">{}</text>",
        y0 - MIN_BAR_PX - 4,
        TEXT_PX - 2,
        escape(&text)
    )
}

/// A number as short as it can be read: `0`, `3`, `0.004`, `12.5`.
pub fn short(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

/// A category label as one line, or two (split at the space nearest its middle) when one
/// line would be wider than `room`.
pub fn label_lines(label: &str, room: i32) -> Vec<&str> {
    if text_width(label) + 8 <= room {
        return vec![label];
    }
    let middle = label.len() / 2;
    match label
        .match_indices(' ')
        .map(|(i, _)| i)
        .min_by_key(|i| i.abs_diff(middle))
    {
        Some(i) => vec![&label[..i], &label[i + 1..]],
        None => vec![label],
    }
}

/// Category labels centred under the groups (`centres` in backend pixels, each `room`
/// wide), wrapped onto two lines where that helps, and thinned so that none overlap.
pub fn categories(labels: &[String], centres: &[i32], room: i32, y: i32) -> String {
    let lines: Vec<Vec<&str>> = labels.iter().map(|l| label_lines(l, room)).collect();
    let widest = lines
        .iter()
        .flatten()
        .map(|l| text_width(l))
        .max()
        .unwrap_or(0);
    let every = if room <= 0 {
        1
    } else {
        ((widest + 8) as f64 / room as f64).ceil().max(1.0) as usize
    };
    let mut out = String::from("<g class=\"categories\">");
    for (i, (label, x)) in lines.iter().zip(centres).enumerate() {
        if i % every != 0 {
            continue;
        }
        let text: String = label
            .iter()
            .enumerate()
            .map(|(n, line)| {
                format!(
                    "<tspan x=\"{x}\" dy=\"{}\">{}</tspan>",
                    if n == 0 { "0" } else { "1.15em" },
                    escape(line)
                )
            })
            .collect();
        out.push_str(&format!(
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"{TEXT_PX}\" font-family=\"sans-serif\" fill=\"currentColor\">{text}</text>"
        ));
    }
    out.push_str("</g>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(label: &str) -> Entry {
        Entry {
            label: label.into(),
            swatch: Swatch::Block(RGBColor(1, 2, 3)),
        }
    }

    #[test]
    fn the_legend_wraps_into_rows_that_all_sit_inside_the_strip_above_the_plot() {
        let many: Vec<Entry> = (0..8)
            .map(|i| entry(&format!("a rather long baseline {i}")))
            .collect();
        let s = strip("Evaluation", many, 520);
        let rows: std::collections::BTreeSet<i32> = s.entries.iter().map(|(_, y, _)| *y).collect();
        assert!(rows.len() > 1, "eight long labels need more than one row");
        for (x, y, e) in &s.entries {
            assert!(y + ROW_PX / 2 <= s.height, "{} sits in the strip", e.label);
            assert!(
                *x + 26 + text_width(&e.label) <= 520 - 12,
                "{} fits across",
                e.label
            );
        }
    }

    #[test]
    fn a_chart_without_a_legend_keeps_only_the_title_row() {
        let s = strip("Tokens per example", Vec::new(), 520);
        assert!(s.entries.is_empty());
        assert!(!s.svg().contains("class=\"legend\""));
        assert!(s.height < 2 * ROW_PX);
    }

    #[test]
    fn strip_text_is_escaped_and_drawn_in_the_page_colour() {
        let s = strip("<b>", vec![entry("a&b")], 520).svg();
        assert!(s.contains("&lt;b&gt;") && s.contains("a&amp;b"));
        assert!(!s.contains("<b>"));
        assert!(s.contains("fill=\"currentColor\""));
    }

    #[test]
    fn a_zero_bar_gets_a_visible_stub_and_its_value() {
        let s = stub(10, 30, 200, RGBColor(0x25, 0x63, 0xeb), Some(0.0));
        assert!(s.contains(&format!("height=\"{MIN_BAR_PX}\"")));
        assert!(s.contains(">0</text>"));
        let missing = stub(10, 30, 200, RGBColor(0x25, 0x63, 0xeb), None);
        assert!(!missing.contains("<rect") && missing.contains(">n/a</text>"));
    }

    #[test]
    fn numbers_are_as_short_as_they_can_be_read() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(3.0), "3");
        assert_eq!(short(0.004), "0.004");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(12.54), "12.5");
    }

    #[test]
    fn crowded_category_labels_are_thinned_so_none_overlap() {
        let labels: Vec<String> = (0..10)
            .map(|i| format!("{}–{}", 1 << i, 1 << (i + 1)))
            .collect();
        let centres: Vec<i32> = (0..10).map(|i| 40 + i * 30).collect();
        let svg = categories(&labels, &centres, 30, 300);
        let shown = svg.matches("<text").count();
        assert!((2..10).contains(&shown), "{shown} labels");
        let roomy = categories(&labels[..3], &centres[..3], 200, 300);
        assert_eq!(roomy.matches("<text").count(), 3);
    }

    #[test]
    fn a_long_category_label_wraps_onto_two_lines_at_its_middle_space() {
        assert_eq!(
            label_lines("label accuracy", 100),
            vec!["label", "accuracy"]
        );
        assert_eq!(label_lines("score", 100), vec!["score"]);
        assert_eq!(
            label_lines("129–256", 30),
            vec!["129–256"],
            "nowhere to split"
        );
        let svg = categories(&["label accuracy".into()], &[50], 100, 300);
        assert!(svg.contains(
            "<tspan x=\"50\" dy=\"0\">label</tspan><tspan x=\"50\" dy=\"1.15em\">accuracy</tspan>"
        ));
    }

    #[test]
    fn a_threshold_line_carries_its_class_value_and_meaning() {
        let l = threshold("threshold", 60, 160, 120, 0.5, "min score 0.50");
        assert!(l.starts_with("<line class=\"threshold-line threshold\" data-value=\"0.5\""));
        assert!(l.contains("<title>min score 0.50</title>"));
    }
}
