//! The platform's operating documents: the participant user guide, the accession agreements for API providers and
//! API users, the operator–participant SLA, the information-security requirements, the threat model, the API
//! standards and the developer guide — each in English, Russian and Kazakh, with a version.
//!
//! They are written in the repository as Markdown (`assets/docs/<lang>/<slug>.md`, a small front matter on top) and
//! embedded in the binary; the threat model's body is the repository's own `THREAT_MODEL.md` (one source: each
//! language's file carries a translated preface, the table follows as written). They are rendered once with
//! pulldown-cmark: raw HTML in the Markdown is shown as text, never passed through, links go only to https, http,
//! mailto or the platform's own paths, and every heading gets a numbered anchor for the table of contents.
//! The accession agreements' versions and their electronic acceptance are [`agreements`]'.

use std::sync::OnceLock;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::i18n::Lang;

pub mod agreements;
pub mod routes;

pub use routes::router;

/// One document as the repository holds it: its address and its Markdown in each language.
struct Source {
    slug: &'static str,
    /// English, Russian, Kazakh.
    texts: [&'static str; 3],
    /// Appended to every language's text: the threat model's one source.
    appendix: Option<&'static str>,
}

macro_rules! source {
    ($slug:literal) => {
        Source {
            slug: $slug,
            texts: [
                include_str!(concat!("../../assets/docs/en/", $slug, ".md")),
                include_str!(concat!("../../assets/docs/ru/", $slug, ".md")),
                include_str!(concat!("../../assets/docs/kk/", $slug, ".md")),
            ],
            appendix: None,
        }
    };
}

/// The documents, in the order the index lists them.
const SOURCES: &[Source] = &[
    source!("user-guide"),
    source!("developer-guide"),
    source!("agreement-provider"),
    source!("agreement-user"),
    source!("sla"),
    source!("security"),
    Source { appendix: Some(include_str!("../../THREAT_MODEL.md")), ..source!("threat-model") },
    source!("api-standards"),
];

/// The address of the developer guide (its runnable commands are tested against `kopir demo`).
pub const DEVELOPER_GUIDE: &str = "developer-guide";

/// A heading of a document, for its table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// 2 or 3.
    pub level: u8,
    pub id: String,
    pub text: String,
}

/// A stretch of a document under one heading, as plain text: what search reads.
#[derive(Debug, Clone)]
pub struct Section {
    pub id: String,
    pub heading: String,
    pub text: String,
}

/// A fenced code block with a title (```` ```sh title="…" ````): in the developer guide, a command a test runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    pub language: String,
    pub title: String,
    pub code: String,
}

/// One document in one language, rendered.
#[derive(Debug, Clone)]
pub struct Document {
    pub slug: &'static str,
    pub lang: Lang,
    pub title: String,
    pub version: String,
    /// The date of this version (YYYY-MM-DD).
    pub date: String,
    pub summary: String,
    /// HTML, safe to embed as is: rendered from the Markdown with raw HTML escaped.
    pub html: String,
    pub toc: Vec<TocEntry>,
    pub sections: Vec<Section>,
    pub code_blocks: Vec<CodeBlock>,
    /// The Markdown as written (the front matter left out), with the appendix.
    pub markdown: String,
    /// Days participants are given to accept a new version (the accession agreements only).
    pub accept_within_days: Option<u32>,
}

/// Every document in every language: rendered once, on first use.
fn all() -> &'static [[Document; 3]] {
    static ALL: OnceLock<Vec<[Document; 3]>> = OnceLock::new();
    ALL.get_or_init(|| {
        SOURCES.iter().map(|s| Lang::ALL.map(|lang| render(s.slug, lang, s.texts[index(lang)], s.appendix))).collect()
    })
}

fn index(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Ru => 1,
        Lang::Kk => 2,
    }
}

/// The documents in `lang`, in the index's order.
pub fn documents(lang: Lang) -> impl Iterator<Item = &'static Document> {
    all().iter().map(move |d| &d[index(lang)])
}

/// One document in `lang`.
pub fn document(slug: &str, lang: Lang) -> Option<&'static Document> {
    all().iter().find(|d| d[0].slug == slug).map(|d| &d[index(lang)])
}

/// The SHA-256 (hex) of a document's version: over its Markdown in all three languages, so that no language's text
/// can change under the same hash.
pub fn version_hash(slug: &str) -> Option<String> {
    let source = SOURCES.iter().find(|s| s.slug == slug)?;
    let mut all = Vec::new();
    for text in source.texts {
        all.extend_from_slice(text.as_bytes());
        all.push(0);
    }
    Some(crate::digest::sha256_hex(&all))
}

/// The front matter: `key: value` lines between two `---` lines at the top.
fn front_matter(text: &str) -> (Vec<(&str, &str)>, &str) {
    let Some(rest) = text.strip_prefix("---\n") else { return (Vec::new(), text) };
    let Some(end) = rest.find("\n---\n") else { return (Vec::new(), text) };
    let fields = rest[..end].lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim(), v.trim())).collect();
    (fields, &rest[end + 5..])
}

/// Where a link in a document may lead: the web (https, http), e-mail, or a path or anchor of the platform.
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
        || (lower.starts_with('/') && !lower.starts_with("//"))
        || lower.starts_with('#')
}

/// `sh title="Make a key"` → ("sh", "Make a key").
fn code_info(info: &str) -> (String, String) {
    let language = info.split_whitespace().next().unwrap_or_default().to_string();
    let title = info
        .split_once("title=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(title, _)| title.to_string())
        .unwrap_or_default();
    (language, title)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn render(slug: &'static str, lang: Lang, text: &'static str, appendix: Option<&'static str>) -> Document {
    let (fields, body) = front_matter(text);
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).unwrap_or_default();
    let markdown = match appendix {
        Some(extra) => format!("{body}\n\n{extra}"),
        None => body.to_string(),
    };
    let events: Vec<Event> =
        Parser::new_ext(&markdown, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).collect();

    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    let mut toc = Vec::new();
    let mut sections = vec![Section { id: String::new(), heading: field("title"), text: String::new() }];
    let mut code_blocks = Vec::new();
    let mut heading_number = 0;
    let mut in_code: Option<(String, String, String)> = None;
    // A heading's words name its section; they are not repeated in the section's text.
    let mut in_heading = false;
    let mut i = 0;
    while i < events.len() {
        let event = events[i].clone();
        i += 1;
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                // The heading's words, to name its anchor in the contents and its section in search.
                let mut words = String::new();
                let mut j = i;
                while j < events.len() && !matches!(events[j], Event::End(TagEnd::Heading(_))) {
                    if let Event::Text(t) | Event::Code(t) = &events[j] {
                        words.push_str(t);
                    }
                    j += 1;
                }
                heading_number += 1;
                let id = format!("sec-{heading_number}");
                // The page's one `h1` is the document's title: a `#` heading in the text becomes a section.
                let level = if level == HeadingLevel::H1 { HeadingLevel::H2 } else { level };
                let depth = if level == HeadingLevel::H2 { 2 } else { 3 };
                if level <= HeadingLevel::H3 {
                    toc.push(TocEntry { level: depth, id: id.clone(), text: words.clone() });
                }
                sections.push(Section { id: id.clone(), heading: words, text: String::new() });
                in_heading = true;
                out.push(Event::Start(Tag::Heading {
                    level,
                    id: Some(CowStr::from(id)),
                    classes: Vec::new(),
                    attrs: Vec::new(),
                }));
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let (language, title) = match &kind {
                    CodeBlockKind::Fenced(info) => code_info(info),
                    CodeBlockKind::Indented => (String::new(), String::new()),
                };
                if !title.is_empty() {
                    out.push(Event::Html(CowStr::from(format!("<p class=\"code-title\">{}</p>\n", escape(&title)))));
                }
                in_code = Some((language.clone(), title, String::new()));
                let info = CowStr::from(language);
                out.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))));
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((language, title, code)) = in_code.take()
                    && !title.is_empty()
                {
                    code_blocks.push(CodeBlock { language, title, code });
                }
                out.push(Event::End(TagEnd::CodeBlock));
            }
            Event::Text(t) => {
                if let Some((_, _, code)) = in_code.as_mut() {
                    code.push_str(&t);
                }
                if let Some(section) = sections.last_mut().filter(|_| !in_heading) {
                    section.text.push_str(&t);
                    section.text.push(' ');
                }
                out.push(Event::Text(t));
            }
            Event::Code(t) => {
                if let Some(section) = sections.last_mut().filter(|_| !in_heading) {
                    section.text.push_str(&t);
                    section.text.push(' ');
                }
                out.push(Event::Code(t));
            }
            // Raw HTML is shown as the text it is, never passed through.
            Event::Html(t) | Event::InlineHtml(t) => out.push(Event::Text(t)),
            Event::Start(Tag::HtmlBlock) => out.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => out.push(Event::End(TagEnd::Paragraph)),
            Event::Start(Tag::Link { link_type, dest_url, title, id })
            | Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                let dest_url = if safe_url(&dest_url) { dest_url } else { CowStr::from("#") };
                out.push(Event::Start(Tag::Link { link_type, dest_url, title, id }));
            }
            Event::End(TagEnd::Image) => out.push(Event::End(TagEnd::Link)),
            Event::End(TagEnd::Heading(level)) => {
                in_heading = false;
                let level = if level == HeadingLevel::H1 { HeadingLevel::H2 } else { level };
                out.push(Event::End(TagEnd::Heading(level)));
            }
            other => out.push(other),
        }
    }
    let mut html = String::with_capacity(markdown.len() * 2);
    pulldown_cmark::html::push_html(&mut html, out.into_iter());
    // Tables scroll on their own on a narrow screen rather than widening the page.
    let html = html.replace("<table>", "<div class=\"doc-table\"><table>").replace("</table>", "</table></div>");
    sections.retain(|s| !s.text.trim().is_empty() || !s.heading.is_empty());
    Document {
        slug,
        lang,
        title: field("title"),
        version: field("version"),
        date: field("date"),
        summary: field("summary"),
        html,
        toc,
        sections,
        code_blocks,
        markdown,
        accept_within_days: field("accept_within_days").parse().ok(),
    }
}

/// A place in a document where every word asked for occurs.
#[derive(Debug, Clone)]
pub struct Hit {
    pub slug: &'static str,
    pub title: String,
    pub section_id: String,
    pub heading: String,
    /// A little of the section's text around the first word found.
    pub excerpt: String,
}

/// The words of a query: runs of letters and digits, lower-cased, at most ten.
pub fn query_words(query: &str) -> Vec<String> {
    query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).take(10).collect()
}

/// Sections of the documents in `lang` holding every word of `query` (in the heading or the text), in the index's
/// order; at most `limit`.
pub fn search(lang: Lang, query: &str, limit: usize) -> Vec<Hit> {
    let words = query_words(query);
    if words.is_empty() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for doc in documents(lang) {
        for section in &doc.sections {
            let haystack = format!("{} {}", section.heading, section.text).to_lowercase();
            if words.iter().all(|w| haystack.contains(w.as_str())) {
                hits.push(Hit {
                    slug: doc.slug,
                    title: doc.title.clone(),
                    section_id: section.id.clone(),
                    heading: section.heading.clone(),
                    excerpt: excerpt(&section.text, &words[0]),
                });
                if hits.len() >= limit {
                    return hits;
                }
            }
        }
    }
    hits
}

/// About 200 characters of `text` around the first occurrence of `word` (already lower-case).
fn excerpt(text: &str, word: &str) -> String {
    let chars: Vec<char> = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect();
    let lower: Vec<char> = chars.iter().flat_map(|c| c.to_lowercase()).collect();
    let target: Vec<char> = word.chars().collect();
    // Lower-casing keeps the length of every letter these languages use, so positions carry over.
    let at = if lower.len() == chars.len() {
        lower.windows(target.len().max(1)).position(|w| w == target.as_slice()).unwrap_or(0)
    } else {
        0
    };
    let start = at.saturating_sub(80);
    let end = (at + 120).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn every_document_exists_in_every_language_with_title_version_and_contents() {
        for lang in Lang::ALL {
            let docs: Vec<_> = documents(lang).collect();
            assert_eq!(docs.len(), SOURCES.len());
            for doc in docs {
                assert!(!doc.title.is_empty(), "{} {lang:?}: no title", doc.slug);
                assert!(!doc.version.is_empty(), "{} {lang:?}: no version", doc.slug);
                assert_eq!(doc.date.len(), 10, "{} {lang:?}: date", doc.slug);
                assert!(!doc.summary.is_empty(), "{} {lang:?}: no summary", doc.slug);
                assert!(doc.toc.len() >= 3, "{} {lang:?}: too few headings", doc.slug);
                assert!(doc.html.contains("id=\"sec-1\""), "{} {lang:?}", doc.slug);
                // Each language is its own text, not a copy of the English one.
                if lang != Lang::En {
                    let en = document(doc.slug, Lang::En).unwrap();
                    assert_ne!(doc.title, en.title, "{} {lang:?} is untranslated", doc.slug);
                }
            }
        }
    }

    #[test]
    fn versions_agree_across_languages() {
        for source in SOURCES {
            let versions: Vec<String> =
                Lang::ALL.iter().map(|l| document(source.slug, *l).unwrap().version.clone()).collect();
            assert!(versions.iter().all(|v| *v == versions[0]), "{}: {versions:?}", source.slug);
            assert_eq!(version_hash(source.slug).unwrap().len(), 64);
        }
    }

    #[test]
    fn raw_html_is_escaped_and_unsafe_links_are_dropped() {
        let text = "---\ntitle: T\n---\n## Head <b>x</b>\n\n<script>alert(1)</script>\n\n\
                    Inline <img src=x onerror=alert(1)> text [a](javascript:alert(1)) ![i](data:x) [ok](/docs)\n";
        let doc = render("t", Lang::En, text, None);
        assert!(!doc.html.contains("<script"), "{}", doc.html);
        assert!(!doc.html.contains("<img"), "{}", doc.html);
        assert!(!doc.html.contains("<b>"), "{}", doc.html);
        assert!(doc.html.contains("&lt;script&gt;"), "{}", doc.html);
        assert!(!doc.html.contains("javascript:"), "{}", doc.html);
        assert!(!doc.html.contains("data:x"), "{}", doc.html);
        assert!(doc.html.contains("href=\"/docs\""), "{}", doc.html);
    }

    #[test]
    fn headings_get_numbered_anchors_and_titled_code_blocks_are_kept() {
        let text =
            "---\ntitle: T\n---\n## One\n\ntext\n\n### Two `x`\n\n```sh title=\"Make a key\"\nopenssl genpkey\n```\n";
        let doc = render("t", Lang::En, text, None);
        assert_eq!(
            doc.toc,
            vec![
                TocEntry { level: 2, id: "sec-1".into(), text: "One".into() },
                TocEntry { level: 3, id: "sec-2".into(), text: "Two x".into() }
            ]
        );
        assert_eq!(
            doc.code_blocks,
            vec![CodeBlock { language: "sh".into(), title: "Make a key".into(), code: "openssl genpkey\n".into() }]
        );
        assert!(doc.html.contains("<p class=\"code-title\">Make a key</p>"));
    }

    #[test]
    fn search_finds_words_in_any_case_in_each_language() {
        assert!(search(Lang::En, "PKCE", 50).iter().any(|h| h.slug == DEVELOPER_GUIDE));
        assert!(search(Lang::Ru, "Договор присоединения", 50).iter().any(|h| h.slug == "agreement-provider"));
        assert!(search(Lang::Kk, "келісім", 50).iter().any(|h| h.slug == "agreement-user"));
        assert!(search(Lang::En, "no-such-word-anywhere", 50).is_empty());
        assert!(search(Lang::En, "  ***  ", 50).is_empty());
    }

    #[test]
    fn the_developer_guide_s_commands_are_the_same_in_every_language() {
        let commands = |lang| -> Vec<String> {
            document(DEVELOPER_GUIDE, lang)
                .unwrap()
                .code_blocks
                .iter()
                .filter(|b| b.language == "sh")
                .map(|b| b.code.clone())
                .collect()
        };
        let en = commands(Lang::En);
        assert!(en.len() >= 10, "{en:?}");
        assert_eq!(commands(Lang::Ru), en);
        assert_eq!(commands(Lang::Kk), en);
    }

    #[test]
    fn the_threat_model_is_rendered_from_the_repository_s_one_source() {
        for lang in Lang::ALL {
            let doc = document("threat-model", lang).unwrap();
            assert!(doc.markdown.contains("## TLS listener and HTTP server"));
        }
    }
}
