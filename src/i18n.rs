//! Languages and their texts. Pages, e-mails of the platform and error pages speak English, Russian and Kazakh.
//!
//! Texts live in `assets/i18n/<lang>.toml`, one file per language, English first; a key missing in a language falls
//! back to English, and unit tests keep the files complete and every key the code or a template asks for present.
//!
//! The language of the request being handled is request context, like the request id: a layer of the web server
//! reads it once (the `kopir_lang` cookie, else `Accept-Language`) and [`current`] answers it anywhere below, so
//! neither handlers nor errors pass it around.
//! A handler takes [`Texts`] as an extractor (or calls [`Texts::current`]) and hands it to its template as `t`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

/// The cookie that remembers a visitor's chosen language.
pub const LANG_COOKIE: &str = "kopir_lang";

/// Languages the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
    Kk,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ru, Lang::Kk];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
            Lang::Kk => "kk",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.get(..2)?.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            "kk" | "kz" => Some(Lang::Kk),
            _ => None,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../assets/i18n/en.toml"),
            Lang::Ru => include_str!("../assets/i18n/ru.toml"),
            Lang::Kk => include_str!("../assets/i18n/kk.toml"),
        }
    }

    /// The language a request asks for: the `kopir_lang` cookie, else the first known language in Accept-Language.
    pub fn of(headers: &HeaderMap) -> Lang {
        let jar = axum_extra::extract::CookieJar::from_headers(headers);
        if let Some(lang) = jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(|part| Lang::parse(part.trim())))
            .unwrap_or(Lang::En)
    }
}

tokio::task_local! {
    static CURRENT: Lang;
    /// The operator's time zone (`time_zone`), in which pages show times.
    static ZONE: jiff::tz::TimeZone;
}

/// The language of the request being handled; English outside a request (the CLI, background work).
pub fn current() -> Lang {
    CURRENT.try_with(|lang| *lang).unwrap_or(Lang::En)
}

/// Runs `f` with `lang` as the current language.
pub async fn scope<F: Future>(lang: Lang, f: F) -> F::Output {
    CURRENT.scope(lang, f).await
}

/// Runs `f` with `lang` as the current language and `zone` as the zone pages show times in.
pub async fn scope_with_zone<F: Future>(lang: Lang, zone: jiff::tz::TimeZone, f: F) -> F::Output {
    ZONE.scope(zone, CURRENT.scope(lang, f)).await
}

/// The stored time (RFC 3339) in the zone of the request being handled (the default zone outside a request).
fn local(rfc3339: &str) -> Option<jiff::civil::DateTime> {
    let at: jiff::Timestamp = rfc3339.parse().ok()?;
    let zone = ZONE.try_with(|z| z.clone()).unwrap_or_else(|_| crate::store::calendar::default_time_zone());
    Some(zone.to_datetime(at))
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn format_date(lang: Lang, date: jiff::civil::Date) -> String {
    match lang {
        Lang::En => {
            let month = MONTHS.get(usize::try_from(date.month() - 1).unwrap_or(0)).copied().unwrap_or("");
            format!("{} {month} {}", date.day(), date.year())
        }
        Lang::Ru | Lang::Kk => format!("{:02}.{:02}.{}", date.day(), date.month(), date.year()),
    }
}

type Catalogue = HashMap<String, String>;

fn flatten(prefix: &str, table: &toml::Table, out: &mut Catalogue) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            toml::Value::String(s) => {
                out.insert(path, s.clone());
            }
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

fn catalogue(lang: Lang) -> &'static Catalogue {
    static CATALOGUES: OnceLock<[Catalogue; 3]> = OnceLock::new();
    let all = CATALOGUES.get_or_init(|| {
        Lang::ALL.map(|l| {
            let mut out = Catalogue::new();
            if let Ok(table) = toml::from_str::<toml::Table>(l.source()) {
                flatten("", &table, &mut out);
            }
            out
        })
    });
    match lang {
        Lang::En => &all[0],
        Lang::Ru => &all[1],
        Lang::Kk => &all[2],
    }
}

/// Whether `key` has an English text (and so a text in every language).
pub fn has_key(key: &str) -> bool {
    catalogue(Lang::En).contains_key(key)
}

/// The texts of one language, handed to every template as `t`.
#[derive(Debug, Clone, Copy)]
pub struct Texts {
    pub lang: Lang,
}

impl Texts {
    /// The texts of the request being handled.
    pub fn current() -> Texts {
        Texts { lang: current() }
    }

    pub fn get<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        catalogue(self.lang).get(key).or_else(|| catalogue(Lang::En).get(key)).map(String::as_str).unwrap_or(key)
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// A stored time (RFC 3339, UTC) as people read it: in the operator's time zone and the language's date format
    /// (`3 Dec 2026, 14:05`; `03.12.2026, 14:05`). The one helper every page uses; the wire and exports keep
    /// RFC 3339 UTC (put it in the `datetime` attribute of `<time>`). A value that is not a time is shown as is.
    pub fn time(&self, rfc3339: &str) -> String {
        match local(rfc3339) {
            Some(at) => format!("{}, {:02}:{:02}", format_date(self.lang, at.date()), at.hour(), at.minute()),
            None => rfc3339.to_string(),
        }
    }

    /// The last local day an end (a consent's expiry) still covers, in the language's date format: an end at
    /// midnight is the end of the day before, so "until 11 Dec" is read as including the 11th.
    pub fn last_day(&self, rfc3339: &str) -> String {
        let before = rfc3339
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| t.checked_sub(jiff::Span::new().seconds(1)).ok())
            .map(|t| t.to_string());
        self.date(before.as_deref().unwrap_or(rfc3339))
    }

    /// The local day of a stored time, in the language's date format (`3 Dec 2026`; `03.12.2026`).
    pub fn date(&self, rfc3339: &str) -> String {
        match local(rfc3339) {
            Some(at) => format_date(self.lang, at.date()),
            None => rfc3339.to_string(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Texts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Texts::current())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn times_are_shown_in_the_operator_zone_and_the_language_format() {
        let almaty = crate::store::calendar::default_time_zone();
        let at = "2026-12-03T20:30:00Z";
        let en = scope_with_zone(Lang::En, almaty.clone(), async { Texts::current().time(at) }).await;
        assert_eq!(en, "4 Dec 2026, 01:30", "UTC+5, the next day");
        let ru = scope_with_zone(Lang::Ru, almaty.clone(), async { Texts::current().time(at) }).await;
        assert_eq!(ru, "04.12.2026, 01:30");
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let kk = scope_with_zone(Lang::Kk, berlin, async { Texts::current().date(at) }).await;
        assert_eq!(kk, "03.12.2026");
        assert_eq!(Texts { lang: Lang::En }.time("never"), "never");
        let end = scope_with_zone(Lang::En, almaty, async { Texts::current().last_day("2026-12-11T19:00:00Z") }).await;
        assert_eq!(end, "11 Dec 2026", "ends when the 11th ends in Almaty");
    }

    #[test]
    fn every_language_has_every_english_key() {
        let english = catalogue(Lang::En);
        assert!(english.len() > 20);
        for lang in [Lang::Ru, Lang::Kk] {
            let other = catalogue(lang);
            let missing: Vec<&String> = english.keys().filter(|k| !other.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{lang:?} lacks {missing:?}");
            let extra: Vec<&String> = other.keys().filter(|k| !english.contains_key(*k)).collect();
            assert!(extra.is_empty(), "{lang:?} has keys English lacks: {extra:?}");
        }
    }

    /// Every file under `dir`, recursively, whose name ends with one of `extensions`.
    fn files_under(dir: &std::path::Path, extensions: &[&str], out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, extensions, out);
            } else if extensions.iter().any(|ext| path.extension().is_some_and(|e| e == *ext)) {
                out.push(path);
            }
        }
    }

    /// Every text key that a template or a source file anywhere under `src/` asks a `Texts` for exists in English — a
    /// typo would show the bare key.
    #[test]
    fn every_text_key_in_use_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        files_under(&root.join("assets/templates"), &["html", "txt"], &mut files);
        files_under(&root.join("src"), &["rs"], &mut files);
        assert!(files.len() > 100, "the walk found only {} files", files.len());
        let mut missing = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for needle in ["t.get(\"", "texts.get(\""] {
                for (i, _) in text.match_indices(needle) {
                    // A text lookup, not e.g. `account.get(…)` of a JSON object.
                    if text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = &text[i + needle.len()..];
                    let key = &rest[..rest.find('"').unwrap()];
                    if !has_key(key) {
                        missing.push(format!("{}: {key}", file.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "text keys without an English text: {missing:?}");
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("kk-KZ,ru;q=0.8"));
        assert_eq!(Lang::of(&headers), Lang::Kk);
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; kopir_lang=ru"));
        assert_eq!(Lang::of(&headers), Lang::Ru);
        assert_eq!(Texts { lang: Lang::Ru }.get("no.such.key"), "no.such.key");
    }

    #[tokio::test]
    async fn the_current_language_is_the_scope_s() {
        assert_eq!(current(), Lang::En);
        assert_eq!(scope(Lang::Kk, async { Texts::current().lang }).await, Lang::Kk);
    }
}
