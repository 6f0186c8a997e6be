//! The pages' header: who is signed in, and the console's and the organisations' menus.
//!
//! Every menu is one data list below ([`CONSOLE`], [`ORGANISATION`]): a new page gets its menu entry by one line
//! there. Menus are grouped (`<details>` drop-downs, no script), so the console fits a 1280-pixel screen.
//!
//! Who is signed in (and the operator's time zone) is request context, like the language: a layer ([`middleware`]) opens an empty slot for each
//! request, the sign-in guards ([`crate::web::session::SignedIn`], and the pending sign-in of a forced password
//! change or TOTP enrolment) fill it once they have read the person, and `base.html` reads it through [`viewer`].
//! So the header names the person on every page — also on an error page and during the first sign-in's steps —
//! without each handler passing them to its template.
//!
//! The header also says what awaits the person ([`Waiting`], read by the same guard in its one read): a participant's
//! member sees their organisation's unread inbox notices ("Inbox (3 unread)"), operator staff and administrators the
//! requests assigned to their team that nobody has taken up yet — each as a link whose text carries the number.

use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::identity::{Role, User};

/// The person a page is shown to.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub username: String,
    pub full_name: String,
    pub role: Role,
    /// The session's CSRF token, for the header's sign-out form.
    pub csrf: String,
    /// Signed in with both factors; `false` while a forced password change or the TOTP enrolment is pending (the
    /// header then offers only signing out).
    pub complete: bool,
    /// What awaits them, when anything does.
    pub waiting: Option<Waiting>,
}

/// What awaits a signed-in person, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// A participant's member: their organisation's inbox notices they have not read.
    Inbox(i64),
    /// Operator staff or administrators: requests assigned to their team (`crate::requests::Team`) and not yet taken
    /// up (status "assigned": raised, re-assigned or escalated to them).
    Requests(i64),
}

impl Waiting {
    /// What awaits `user`, or `None` when nothing does (or nothing can: the regulator only reads). Two indexed
    /// counts at most: `notices (organisation_id, id)` past the person's last reading, or `requests (assignee_team,
    /// status)`.
    pub fn of(conn: &rusqlite::Connection, user: &User) -> rusqlite::Result<Option<Waiting>> {
        let waiting = match (user.organisation_id, crate::requests::Team::of_role(user.role)) {
            (Some(org), _) => Waiting::Inbox(crate::notify::inbox::unread(conn, org, user.id)?),
            (None, Some(team)) => Waiting::Requests(crate::requests::case::awaiting_team(conn, team)?),
            (None, None) => return Ok(None),
        };
        Ok((waiting.count() > 0).then_some(waiting))
    }

    pub fn count(self) -> i64 {
        match self {
            Waiting::Inbox(n) | Waiting::Requests(n) => n,
        }
    }

    /// Where the header's link leads.
    pub fn href(self) -> &'static str {
        match self {
            Waiting::Inbox(_) => "/org/inbox",
            Waiting::Requests(_) => "/console/requests?show=team",
        }
    }

    /// The link's text in the page's language, the number in words' place: "Inbox (3 unread)".
    pub fn text(self, t: impl std::borrow::Borrow<crate::i18n::Texts>) -> String {
        let t = t.borrow();
        let key = match self {
            Waiting::Inbox(_) => "requests_header.inbox_unread",
            Waiting::Requests(_) => "requests_header.requests_awaiting",
        };
        t.get(key).replace("{n}", &self.count().to_string())
    }
}

impl Viewer {
    pub fn new(user: &User, csrf: &str, complete: bool) -> Viewer {
        Viewer {
            username: user.username.clone(),
            full_name: user.full_name.clone(),
            role: user.role,
            csrf: csrf.to_string(),
            complete,
            waiting: None,
        }
    }

    /// The same person, with what awaits them.
    pub fn waiting(mut self, waiting: Option<Waiting>) -> Viewer {
        self.waiting = waiting;
        self
    }

    /// The name the header shows: the full name when there is one, else the user name.
    pub fn display_name(&self) -> &str {
        if self.full_name.trim().is_empty() { &self.username } else { &self.full_name }
    }

    /// The key of the role's name in the page's language.
    pub fn role_key(&self) -> &'static str {
        self.role.text_key()
    }
}

struct Context {
    path: String,
    viewer: Mutex<Option<Viewer>>,
    /// The operator's time zone (`time_zone`): pages show times in it.
    zone: jiff::tz::TimeZone,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Opens the request's slot for the person (see the module's text) and remembers the path, for the menu's current
/// entry, and the operator's time zone, for [`local_time`].
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let context = Context {
        path: request.uri().path().to_string(),
        viewer: Mutex::new(None),
        zone: state.config.time_zone.zone().clone(),
    };
    CONTEXT.scope(context, next.run(request)).await
}

/// A stored instant (RFC 3339, UTC) as a page shows it: in the operator's zone, `YYYY-MM-DD HH:MM:SS` (templates
/// call it as `crate::web::nav::local_time(at)`).
pub fn local_time(rfc3339: &str) -> String {
    let zone = CONTEXT.try_with(|c| c.zone.clone()).unwrap_or_else(|_| crate::store::calendar::default_time_zone());
    crate::store::calendar::local_text(&zone, rfc3339)
}

/// Records the person the request is answered for (called by the sign-in guards).
pub fn record(viewer: Viewer) {
    let _ = CONTEXT.try_with(|c| {
        if let Ok(mut slot) = c.viewer.lock() {
            *slot = Some(viewer);
        }
    });
}

/// The person the page is shown to, if a guard identified one.
pub fn viewer() -> Option<Viewer> {
    CONTEXT.try_with(|c| c.viewer.lock().ok().and_then(|v| v.clone())).ok().flatten()
}

fn current_path() -> String {
    CONTEXT.try_with(|c| c.path.clone()).unwrap_or_default()
}

/// Who sees a menu entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone who sees the menu.
    All,
    /// The operator's administrators only (the pages refuse the others).
    OperatorAdmin,
}

/// One entry of a menu: where it goes, the key of its text, who sees it.
#[derive(Debug)]
pub struct Entry {
    pub href: &'static str,
    pub key: &'static str,
    pub audience: Audience,
}

/// A group of entries under one heading.
#[derive(Debug)]
pub struct Group {
    pub key: &'static str,
    pub entries: &'static [Entry],
}

const fn entry(href: &'static str, key: &'static str) -> Entry {
    Entry { href, key, audience: Audience::All }
}

/// The operator console's menu (operator staff, administrators, the regulator).
pub const CONSOLE: &[Group] = &[
    Group {
        key: "nav.group_overview",
        entries: &[
            entry("/console", "nav.console_home"),
            entry("/console/dashboard", "dashboard.nav"),
            entry("/console/reports/monthly", "monthly.nav"),
            entry("/console/billing", "billing.nav"),
        ],
    },
    Group {
        key: "nav.group_participants",
        entries: &[
            entry("/console/applications", "nav.accreditation_applications"),
            entry("/console/participants", "nav.participants"),
            entry("/console/agreements", "nav.agreements"),
            entry("/console/clients", "nav.clients"),
            entry("/console/certificates", "nav.certificates"),
        ],
    },
    Group {
        key: "nav.group_apis",
        entries: &[
            entry("/console/apis", "catalog.nav_console_apis"),
            entry("/console/apis/health", "health.console_title"),
            entry("/console/availability", "availability.console_title"),
            entry("/console/sla", "monitoring.nav"),
            entry("/marketplace", "catalog.nav_marketplace"),
        ],
    },
    Group {
        key: "nav.group_oversight",
        entries: &[
            entry("/console/requests", "requests.nav"),
            entry("/console/audit", "nav.audit"),
            entry("/docs", "nav.docs"),
            Entry { href: "/console/staff", key: "nav.operator_staff", audience: Audience::OperatorAdmin },
            entry("/registry", "nav.registry"),
        ],
    },
];

/// A participant's workspace menu (its administrators, developers and analysts).
pub const ORGANISATION: &[Group] = &[
    Group {
        key: "nav.group_organisation",
        entries: &[
            entry("/org", "nav.organisation"),
            entry("/org/inbox", "inbox.nav"),
            entry("/org/requests", "requests.nav"),
            entry("/org/accreditation", "nav.accreditation"),
            entry("/org/agreements", "nav.agreements"),
            entry("/org/staff", "nav.staff"),
            entry("/org/profile", "nav.profile"),
        ],
    },
    Group {
        key: "nav.group_org_apis",
        entries: &[
            entry("/org/apps", "nav.apps"),
            entry("/org/apis", "catalog.nav_apis"),
            entry("/org/availability", "availability.nav"),
            entry("/marketplace", "catalog.nav_marketplace"),
        ],
    },
    Group {
        key: "nav.group_org_data",
        entries: &[
            entry("/org/consents", "nav.consents"),
            entry("/org/reports", "reports.nav"),
            entry("/org/billing", "billing.nav"),
            entry("/docs", "nav.docs"),
        ],
    },
];

/// A menu entry as a page draws it.
#[derive(Debug, Clone)]
pub struct MenuEntry {
    pub href: &'static str,
    pub key: &'static str,
    pub current: bool,
}

/// A menu group as a page draws it: `current` when one of its entries is the page shown.
#[derive(Debug, Clone)]
pub struct MenuGroup {
    pub key: &'static str,
    pub entries: Vec<MenuEntry>,
    pub current: bool,
}

/// Whether `href` leads to `path` or to a page under it.
fn leads_to(href: &str, path: &str) -> bool {
    path == href || path.strip_prefix(href).is_some_and(|rest| rest.starts_with('/'))
}

/// The menu for `path` and `role`: the entries `role` may open, the one closest to `path` marked current.
pub fn menu(groups: &[Group], path: &str, role: Option<Role>) -> Vec<MenuGroup> {
    let visible = |e: &Entry| match e.audience {
        Audience::All => true,
        Audience::OperatorAdmin => role == Some(Role::OperatorAdmin),
    };
    let current = groups
        .iter()
        .flat_map(|g| g.entries.iter())
        .filter(|e| visible(e) && leads_to(e.href, path))
        .max_by_key(|e| e.href.len())
        .map(|e| e.href);
    groups
        .iter()
        .map(|g| {
            let entries: Vec<MenuEntry> = g
                .entries
                .iter()
                .filter(|e| visible(e))
                .map(|e| MenuEntry { href: e.href, key: e.key, current: Some(e.href) == current })
                .collect();
            MenuGroup { key: g.key, current: entries.iter().any(|e| e.current), entries }
        })
        .filter(|g| !g.entries.is_empty())
        .collect()
}

/// The console's menu for the page being answered.
pub fn console_menu() -> Vec<MenuGroup> {
    menu(CONSOLE, &current_path(), viewer().map(|v| v.role))
}

/// The organisation's menu for the page being answered.
pub fn organisation_menu() -> Vec<MenuGroup> {
    menu(ORGANISATION, &current_path(), viewer().map(|v| v.role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_s_waiting_texts_exist_and_carry_the_number() {
        for lang in [crate::i18n::Lang::En, crate::i18n::Lang::Ru, crate::i18n::Lang::Kk] {
            let t = crate::i18n::Texts { lang };
            for waiting in [Waiting::Inbox(3), Waiting::Requests(3)] {
                let text = waiting.text(t);
                assert!(text.contains('3') && !text.contains("{n}"), "{lang:?}: {text}");
            }
        }
        assert_eq!(Waiting::Inbox(3).text(crate::i18n::Texts { lang: crate::i18n::Lang::En }), "Inbox (3 unread)");
    }

    #[test]
    fn every_menu_text_exists() {
        for group in CONSOLE.iter().chain(ORGANISATION) {
            assert!(crate::i18n::has_key(group.key), "{}", group.key);
            for e in group.entries {
                assert!(crate::i18n::has_key(e.key), "{}", e.key);
            }
        }
    }

    #[test]
    fn the_closest_entry_is_current_and_admin_entries_are_for_admins() {
        let menu = menu(CONSOLE, "/console/apis/health", Some(Role::Regulator));
        let current: Vec<&str> = menu.iter().flat_map(|g| &g.entries).filter(|e| e.current).map(|e| e.href).collect();
        assert_eq!(current, ["/console/apis/health"]);
        assert!(menu.iter().flat_map(|g| &g.entries).all(|e| e.href != "/console/staff"));
        let admin = super::menu(CONSOLE, "/console/apis/7", Some(Role::OperatorAdmin));
        let current: Vec<&str> = admin.iter().flat_map(|g| &g.entries).filter(|e| e.current).map(|e| e.href).collect();
        assert_eq!(current, ["/console/apis"]);
        assert!(admin.iter().flat_map(|g| &g.entries).any(|e| e.href == "/console/staff"));
        let home = super::menu(CONSOLE, "/console", None);
        assert!(home[0].current && home[0].entries[0].current);
        assert!(!super::menu(CONSOLE, "/consoles", None).iter().any(|g| g.current));
    }
}
