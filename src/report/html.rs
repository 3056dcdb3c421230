//! The report's `index.html`: the run's fidelity verdict, its summary, each plot (its SVG, with a
//! link to the PNG and a line on what it shows), and the plots that were skipped with the reason.
//! Pure: text out.

use serde_json::Value;

use super::verdict::{self, Verdict};

/// A plot the page shows.
pub struct Shown {
    pub stem: String,
    pub title: String,
    /// One sentence on what the plot shows and where it comes from.
    pub about: String,
}

/// A plot the inputs did not allow.
pub struct Skipped {
    pub title: String,
    pub why: String,
}

/// The summary fields the page lists, in this order.
const SUMMARY_FIELDS: &[&str] = &[
    "script",
    "mode",
    "seed",
    "params",
    "started",
    "outcome",
    "error",
    "experiment_seconds",
    "events",
];

/// Marks each image, once the page has loaded, with whether it did (`data-loaded="yes"` or
/// `"no"`): a browser test reads it back, and a reader sees a broken one said in words.
const IMAGE_CHECK: &str = "<script>\n\
window.addEventListener('load', () => {\n\
  for (const img of document.images) {\n\
    const ok = img.complete && img.naturalWidth > 0;\n\
    img.dataset.loaded = ok ? 'yes' : 'no';\n\
    if (!ok) broken(img);\n\
  }\n\
});\n\
function broken(img) {\n\
  img.dataset.loaded = 'no';\n\
  if (img.nextElementSibling && img.nextElementSibling.className === 'broken') return;\n\
  const note = document.createElement('p');\n\
  note.className = 'broken';\n\
  note.textContent = 'This image failed to load: ' + img.getAttribute('src');\n\
  img.after(note);\n\
}\n\
</script>\n";

/// The page. `summary` is `summary.json`, or `None` when the run left none (it was killed);
/// `verdict` is what it says of the run's fidelity.
pub fn page(
    summary: Option<&Value>,
    verdict: &Verdict,
    shown: &[Shown],
    skipped: &[Skipped],
) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>p2plab report</title>\n<style>\n\
         body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; }\n\
         img { width: 100%; border: 1px solid #ddd; }\n\
         td, th { text-align: left; padding: 0.2em 1em 0.2em 0; vertical-align: top; }\n\
         .verdict { padding: 0.5em 1em; border-left: 0.5em solid #999; background: #f4f4f4; }\n\
         .verdict.clean { border-color: #2a2; background: #eefbee; }\n\
         .verdict.flagged { border-color: #d22; background: #fdeeee; }\n\
         table.fidelity { border-collapse: collapse; font-size: 90%; }\n\
         table.fidelity td, table.fidelity th { border-bottom: 1px solid #ddd; }\n\
         tr.bad td { color: #b00; }\n\
         .broken { color: #b00; font-weight: bold; }\n\
         </style>\n",
    );
    html += IMAGE_CHECK;
    html += "</head>\n<body>\n";
    let script = summary
        .and_then(|s| s["script"].as_str())
        .unwrap_or("a run");
    html += &format!("<h1>p2plab report: {}</h1>\n", escape(script));
    html += &verdict::section(verdict);
    html += "<h2>Summary</h2>\n";
    match summary {
        Some(s) => {
            html += "<table>\n";
            for &field in SUMMARY_FIELDS {
                let value = match &s[field] {
                    Value::String(text) => text.clone(),
                    Value::Null => "none".into(),
                    other => other.to_string(),
                };
                html += &format!("<tr><th>{field}</th><td>{}</td></tr>\n", escape(&value));
            }
            html += "</table>\n";
        }
        None => {
            html += "<p>No <code>summary.json</code>: the run did not finish (it was killed, \
                     or is still running). The plots show its events up to the last one.</p>\n";
        }
    }
    for plot in shown {
        html += &format!(
            "<h2>{title}</h2>\n<p>{about} (<a href=\"{stem}.png\">PNG</a>, \
             <a href=\"{stem}.svg\">SVG</a>)</p>\n<img id=\"plot-{stem}\" class=\"plot\" \
             src=\"{stem}.svg\" alt=\"{title} (image failed to load)\" onerror=\"broken(this)\">\n",
            title = escape(&plot.title),
            about = escape(&plot.about),
            stem = escape(&plot.stem),
        );
    }
    if !skipped.is_empty() {
        html += "<h2>Skipped</h2>\n<ul>\n";
        for s in skipped {
            html += &format!("<li><b>{}</b>: {}</li>\n", escape(&s.title), escape(&s.why));
        }
        html += "</ul>\n";
    }
    html += "</body>\n</html>\n";
    html
}

/// Text made safe for HTML, inside elements and inside quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_summary_plots_and_what_was_skipped() {
        let summary = serde_json::json!({"script": "a<b>.rhai", "seed": 3, "error": null});
        let shown = [Shown {
            stem: "alive".into(),
            title: "Nodes alive".into(),
            about: "Nodes & churn.".into(),
        }];
        let skipped = [Skipped {
            title: "Throughput".into(),
            why: "no traffic.csv".into(),
        }];
        let html = page(Some(&summary), &Verdict::NotRecorded, &shown, &skipped);
        assert!(html.contains("<h1>p2plab report: a&lt;b&gt;.rhai</h1>"));
        assert!(html.contains("<tr><th>seed</th><td>3</td></tr>"));
        assert!(html.contains("<tr><th>error</th><td>none</td></tr>"));
        assert!(html.contains(
            "<img id=\"plot-alive\" class=\"plot\" src=\"alive.svg\" \
             alt=\"Nodes alive (image failed to load)\" onerror=\"broken(this)\">"
        ));
        assert!(html.contains("<b>no verdict recorded</b>"));
        // The verdict comes before the summary.
        assert!(html.find("id=\"verdict\"") < html.find("<h2>Summary</h2>"));
        assert!(html.contains("<a href=\"alive.png\">PNG</a>"));
        assert!(html.contains("Nodes &amp; churn."));
        assert!(html.contains("<li><b>Throughput</b>: no traffic.csv</li>"));
    }

    #[test]
    fn a_run_without_summary_says_so() {
        let html = page(None, &Verdict::NotRecorded, &[], &[]);
        assert!(html.contains("No <code>summary.json</code>"));
        assert!(!html.contains("Skipped"));
    }
}
