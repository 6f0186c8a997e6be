//! Exports of report tables as CSV and JSON, shared by the participants' reports, the dashboard and the monthly
//! report: a [`Table`] (stable column names, typed cells) is written as RFC 4180 CSV with a header row, or as a JSON
//! object whose field names are the column names; [`download`] answers it as a file named after the interval.
//!
//! ```
//! use kopir::reports::export::{Cell, Table};
//! let mut table = Table::new("by_endpoint", &["endpoint", "requests", "p95_ms"]);
//! table.push(vec![Cell::text("/accounts, \"all\""), Cell::count(12), Cell::Empty]);
//! assert_eq!(table.csv(), "endpoint,requests,p95_ms\r\n\"/accounts, \"\"all\"\"\",12,\r\n");
//! assert_eq!(table.json_rows()[0]["requests"], 12);
//! ```

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

crate::text_enum! {
    /// How a table is exported.
    pub enum Format {
        Csv = "csv",
        Json = "json",
    }
}

/// One cell of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Integer(i64),
    /// A measured value, written with at most `decimals` digits after the point.
    Decimal {
        value: f64,
        decimals: usize,
    },
    /// No value (a percentile of no requests): empty in CSV, `null` in JSON.
    Empty,
}

impl Cell {
    pub fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    pub fn count(value: u64) -> Cell {
        Cell::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// Milliseconds to one decimal, or empty.
    pub fn ms(value: Option<f64>) -> Cell {
        value.map_or(Cell::Empty, |value| Cell::Decimal { value, decimals: 1 })
    }

    /// The cell as a page shows it (as in CSV; `—` for no value).
    pub fn shown(&self) -> String {
        match self {
            Cell::Empty => "—".to_string(),
            other => other.csv(),
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Integer(n) => n.to_string(),
            Cell::Decimal { value, decimals } => format!("{value:.decimals$}"),
            Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::String(text.clone()),
            Cell::Integer(n) => json!(n),
            Cell::Decimal { value, decimals } => {
                // Rounded as in CSV, so both exports carry the same number.
                format!("{value:.decimals$}").parse::<f64>().map_or(Value::Null, |v| json!(v))
            }
            Cell::Empty => Value::Null,
        }
    }
}

/// A table of a report: a stable name (used in file names and as the JSON key), column names that never change
/// with the language (`snake_case`), and rows of cells, one per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// Quotes a CSV field when RFC 4180 requires it (comma, quote, CR or LF inside), doubling inner quotes.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

impl Table {
    pub fn new(name: &'static str, columns: &[&'static str]) -> Table {
        Table { name, columns: columns.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (short rows are padded with empty cells, long ones cut to the columns).
    pub fn push(&mut self, mut row: Vec<Cell>) {
        row.resize(self.columns.len(), Cell::Empty);
        self.rows.push(row);
    }

    /// RFC 4180: a header row, CRLF line ends, quoted fields where needed.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let line = |cells: Vec<String>| cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",") + "\r\n";
        out.push_str(&line(self.columns.iter().map(|c| c.to_string()).collect()));
        for row in &self.rows {
            out.push_str(&line(row.iter().map(Cell::csv).collect()));
        }
        out
    }

    /// The rows as JSON objects keyed by column name.
    pub fn json_rows(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                let object: Map<String, Value> =
                    self.columns.iter().zip(row).map(|(column, cell)| (column.to_string(), cell.json())).collect();
                Value::Object(object)
            })
            .collect()
    }
}

/// The interval a report covers, as its exports name it: local dates `from` (included) to `to` (excluded) or UTC
/// instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub from: String,
    pub to: String,
}

impl Interval {
    /// `2026-12-01_2026-12-08`: safe in a file name (no `:`).
    fn file_part(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
        };
        format!("{}_{}", clean(&self.from), clean(&self.to))
    }
}

/// A JSON document of several tables: `{"report", "from", "to", "tables": {name: [rows]}}`, plus `extra` fields.
pub fn json_document(report: &str, interval: &Interval, tables: &[Table], extra: Map<String, Value>) -> Value {
    let mut document = Map::new();
    document.insert("report".into(), json!(report));
    document.insert("from".into(), json!(interval.from));
    document.insert("to".into(), json!(interval.to));
    document.extend(extra);
    let tables: Map<String, Value> = tables.iter().map(|t| (t.name.to_string(), Value::Array(t.json_rows()))).collect();
    document.insert("tables".into(), Value::Object(tables));
    Value::Object(document)
}

/// The file name of an export: `{report}-{table}_{from}_{to}.{csv|json}`.
pub fn filename(report: &str, table: Option<&str>, interval: &Interval, format: Format) -> String {
    let stem = match table {
        Some(table) => format!("{report}-{table}"),
        None => report.to_string(),
    };
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    format!("{clean}_{}.{}", interval.file_part(), format.as_str())
}

/// A download: the body with its content type and `Content-Disposition: attachment; filename=…`.
pub fn download(format: Format, filename: &str, body: String) -> Response {
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8; header=present",
        Format::Json => "application/json",
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response()
}

/// One table as a download in `format`.
pub fn table_download(report: &str, interval: &Interval, table: &Table, format: Format) -> Response {
    let name = filename(report, Some(table.name), interval, format);
    let body = match format {
        Format::Csv => table.csv(),
        Format::Json => json_document(report, interval, std::slice::from_ref(table), Map::new()).to_string(),
    };
    download(format, &name, body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn csv_quotes_as_rfc_4180_and_json_keeps_column_names() {
        let mut table = Table::new("by_error", &["error_code", "requests", "p95_ms"]);
        table.push(vec![Cell::text("a,b"), Cell::count(3), Cell::ms(Some(12.345))]);
        table.push(vec![Cell::text("line\nbreak \"q\""), Cell::count(0)]);
        assert_eq!(table.csv(), "error_code,requests,p95_ms\r\n\"a,b\",3,12.3\r\n\"line\nbreak \"\"q\"\"\",0,\r\n");
        let rows = table.json_rows();
        assert_eq!(rows[0], json!({"error_code": "a,b", "requests": 3, "p95_ms": 12.3}));
        assert_eq!(rows[1]["p95_ms"], Value::Null);
        let interval = Interval { from: "2026-12-01".into(), to: "2026-12-08".into() };
        assert_eq!(
            filename("usage", Some("by_error"), &interval, Format::Csv),
            "usage-by_error_2026-12-01_2026-12-08.csv"
        );
        let hours = Interval { from: "2026-12-01T10:00:00Z".into(), to: "2026-12-01T12:00:00Z".into() };
        assert_eq!(
            filename("usage", None, &hours, Format::Json),
            "usage_2026-12-01T10-00-00Z_2026-12-01T12-00-00Z.json"
        );
        let document = json_document("usage", &interval, &[table], Map::new());
        assert_eq!(document["tables"]["by_error"][0]["requests"], 3);
        assert_eq!(document["from"], "2026-12-01");
    }
}
