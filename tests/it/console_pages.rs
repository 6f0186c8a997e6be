//! The console as people meet it (issue 18): a header that names the signed-in person on every page (also during the
//! first sign-in's steps), grouped menus, every console page's tables without two columns of one heading, and the
//! audit trail as a paged, filtered table with a CSV export.

use crate::common;

use crate::common::Platform;
use crate::common::browser::{Browser, Page, bin, operator_user};
use crate::common::participant::{admin_of_new_organisation, db};
use kopir::audit::{Event, Outcome};
use kopir::identity::Role;

/// The paths of the header's menu entries on a page.
fn menu_links(page: &Page) -> Vec<String> {
    let header = page.body.split("</header>").next().unwrap_or_default();
    header.split("<li><a href=\"").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_string).collect()
}

/// The header cells of every table on a page, table by table (tags inside a cell dropped).
fn table_headings(body: &str) -> Vec<Vec<String>> {
    body.split("<thead>")
        .skip(1)
        .map(|rest| {
            let head = rest.split("</thead>").next().unwrap_or_default();
            head.split("<th")
                .skip(1)
                .map(|cell| {
                    let inner = cell.split_once('>').map(|(_, c)| c).unwrap_or_default();
                    let inner = inner.split("</th>").next().unwrap_or_default();
                    let mut text = String::new();
                    let mut in_tag = false;
                    for c in inner.chars() {
                        match c {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => text.push(c),
                            _ => {}
                        }
                    }
                    text.trim().to_string()
                })
                .collect()
        })
        .collect()
}

fn assert_no_repeated_heading(path: &str, body: &str) {
    for headings in table_headings(body) {
        let named: Vec<&String> = headings.iter().filter(|h| !h.is_empty()).collect();
        for (i, h) in named.iter().enumerate() {
            assert!(!named[..i].contains(h), "{path}: a table has two columns headed {h:?}: {headings:?}");
        }
    }
}

/// The header's person area.
fn who(page: &Page) -> &str {
    let start =
        page.body.find("<div class=\"who\">").unwrap_or_else(|| panic!("no person in the header of {}", page.url));
    let rest = &page.body[start..];
    &rest[..rest.find("</div>").unwrap()]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_header_names_the_person_and_every_console_page_of_the_grouped_menu_opens() {
    let platform = Platform::start().await;
    let password = operator_user(&platform, "dana.admin", Role::OperatorAdmin).await;
    let mut admin = Browser::new(&platform);
    let home = admin.sign_in("dana.admin", &password).await;
    assert!(home.url.ends_with("/console"), "{}", home.url);
    let person = who(&home);
    assert!(person.contains("dana.admin") && person.contains("Operator administrator"), "{person}");
    assert!(person.contains("action=\"/logout\""), "{person}");
    assert!(!home.body.contains("href=\"/login\""), "a signed-in page offers to sign in");
    // Four groups, no script; the page shown is the current entry.
    assert_eq!(home.body.matches("<details class=\"menu").count(), 4, "{}", home.body);
    assert!(!home.body.contains("<script"));
    assert!(home.body.contains("<a href=\"/console\" aria-current=\"page\">"), "{}", home.body);

    let links = menu_links(&home);
    assert!(links.len() >= 14, "{links:?}");
    assert!(links.contains(&"/console/staff".to_string()) && links.contains(&"/console/audit".to_string()));
    for path in &links {
        let page = admin.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(who(&page).contains("dana.admin"), "{path} does not name the person");
        assert!(page.body.contains(&format!("<a href=\"{path}\" aria-current=\"page\">")), "{path} is not current");
        assert_no_repeated_heading(path, &page.body);
    }

    // The regulator's menu leaves out what only administrators open.
    let password = operator_user(&platform, "regulator.nb", Role::Regulator).await;
    let mut regulator = Browser::new(&platform);
    let home = regulator.sign_in("regulator.nb", &password).await;
    assert!(who(&home).contains("Regulator"));
    assert!(!menu_links(&home).contains(&"/console/staff".to_string()));

    // A participant's workspace: its own grouped menu, the person's full name and role in the organisation.
    let bank = admin_of_new_organisation(&platform, &bin("99018000011"), "Menu Bank JSC", "menu.admin").await;
    let org = bank.get("/org").await;
    assert!(who(&org).contains("Aigerim Sadykova") && who(&org).contains("Administrator"), "{}", who(&org));
    assert_eq!(org.body.matches("<details class=\"menu").count(), 3);
    for path in menu_links(&org) {
        let page = bank.get(&path).await;
        // A new organisation (not yet accredited) meets refusals on what accreditation opens (403); the reports say
        // they start with accreditation.
        assert!([200, 403].contains(&page.status), "{path}: {}", page.status);
        if path == "/org/reports" {
            assert_eq!(page.status, 200);
            assert!(page.body.contains("start when your organisation is accredited"), "{}", page.body);
        }
        assert!(who(&page).contains("Aigerim Sadykova"), "{path} does not name the person");
        assert_no_repeated_heading(&path, &page.body);
    }
    // Public pages keep the ways in for visitors, and lead a signed-in person to their workspace instead.
    let registry = bank.get("/registry").await;
    assert!(registry.body.contains("href=\"/org\"") && !registry.body.contains("href=\"/login\""));
    let visitor = Browser::new(&platform).get("/registry").await;
    assert!(visitor.body.contains("href=\"/login\"") && !visitor.body.contains("class=\"who\""));
    platform.shutdown().await;
}

/// Someone whose password was chosen by another (a one-time password) changes it and enrols the second factor
/// first; on both pages the header names them and offers only signing out — never "Sign in".
#[tokio::test(flavor = "multi_thread")]
async fn the_first_sign_in_steps_name_the_person_and_never_offer_to_sign_in() {
    let platform = Platform::start().await;
    let one_time = "Temporary-Passw0rd-42";
    let hash = kopir::identity::hash_password(one_time).unwrap();
    platform
        .running()
        .state
        .db
        .write(move |tx| {
            kopir::identity::create_user(tx, "new.ops", Role::OperatorStaff, &hash, true, kopir::clock::now())
                .map_err(kopir::store::StoreError::from)
        })
        .await
        .unwrap();
    let mut person = Browser::new(&platform);
    person.username = "new.ops".into();
    let forced = person.submit("/login", "/login", &[("username", "new.ops"), ("password", one_time)]).await;
    assert!(forced.url.ends_with("/account/password"), "{}", forced.url);
    assert!(who(&forced).contains("new.ops") && who(&forced).contains("Operator staff"), "{}", who(&forced));
    assert!(!forced.body.contains("href=\"/login\""), "the forced change offers to sign in");
    assert!(!forced.body.contains("<details class=\"menu"), "menus before the second factor");
    let new_password = "new.ops-Chosen-Passw0rd";
    let enrol = person
        .post("/account/password", &forced.csrf(), &[("new_password", new_password), ("confirm", new_password)])
        .await;
    assert!(enrol.url.ends_with("/account/enrol"), "{}", enrol.url);
    assert!(who(&enrol).contains("new.ops") && !enrol.body.contains("href=\"/login\""));
    assert!(!who(&enrol).contains("href=\"/account/password\""), "the voluntary change before the second factor");
    let console = person.enrol(&enrol).await;
    assert!(console.url.ends_with("/console"), "{}", console.url);
    assert!(who(&console).contains("href=\"/account/password\""));
    platform.shutdown().await;
}

/// `count` journal entries `test.bulk` with objects `thing:<i>`, appended by the product's own function.
async fn journal(platform: &Platform, count: usize) {
    platform
        .running()
        .state
        .db
        .write(move |tx| {
            for i in 0..count {
                let event = Event::new("user:bulk.writer", "test.bulk", Outcome::Success)
                    .at(kopir::clock::now())
                    .object(format!("thing:{i}"))
                    .source("10.0.0.1")
                    .detail(serde_json::json!({ "note": "a long detail that has to wrap inside its cell ".repeat(4) }));
                kopir::audit::append(tx, &event)?;
            }
            Ok::<_, kopir::store::StoreError>(())
        })
        .await
        .unwrap();
}

fn rows(page: &Page) -> usize {
    page.body.matches("<tr><td class=\"num\">").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_pages_filters_in_local_days_and_exports_csv() {
    let platform = Platform::start().await;
    journal(&platform, 120).await;
    platform
        .running()
        .state
        .db
        .write(|tx| {
            let late = Event::new("user:bulk.writer", "test.fixed", Outcome::Denied)
                .at(time::macros::datetime!(2026-11-25 20:00 UTC))
                .object("=HYPERLINK(\"https://evil.example\")");
            kopir::audit::append(tx, &late).map_err(kopir::store::StoreError::from)
        })
        .await
        .unwrap();
    let password = operator_user(&platform, "audit.reader", Role::Regulator).await;
    let mut reader = Browser::new(&platform);
    reader.sign_in("audit.reader", &password).await;

    let first = reader.get("/console/audit").await;
    assert_eq!(first.status, 200);
    first.assert_contains("<table class=\"journal\">").assert_contains("<caption>").assert_contains("role=\"search\"");
    first.assert_contains("<h2 id=\"filters-title\">Filters</h2>").assert_contains("Apply filters");
    first.assert_contains("Asia/Almaty");
    assert_eq!(rows(&first), 50);
    assert!(first.body.contains("rel=\"next\"") && !first.body.contains("rel=\"prev\""));

    let third = reader.get("/console/audit?action=test.bulk&page=3").await;
    assert_eq!(rows(&third), 20, "{}", third.body);
    assert!(third.body.contains("rel=\"prev\"") && !third.body.contains("rel=\"next\""));
    third.assert_contains("entries 101–120").assert_contains("Clear filters");

    let some = reader.get("/console/audit?object=thing%3A7").await;
    assert_eq!(rows(&some), 11, "thing:7 and thing:70…79");

    // Days are the operator's: 20:00 UTC on the 25th is 01:00 on the 26th in Almaty, shown in local time.
    let day = reader.get("/console/audit?from=2026-11-26&to=2026-11-26").await;
    assert_eq!(rows(&day), 1);
    day.assert_contains("2026-11-26 01:00:00").assert_contains("Denied");
    assert_eq!(rows(&reader.get("/console/audit?from=2026-11-25&to=2026-11-25").await), 0);

    // The export: every matching entry, RFC 3339 UTC, formulas defused; the link carries the filters.
    let csv = reader.client.get(reader.url("/console/audit.csv?action=test.")).send().await.unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv.headers()["content-disposition"].to_str().unwrap().contains("kopir-audit_"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "seq,at,actor,organisation,action,object,outcome,source,detail,hash");
    assert_eq!(lines.len(), 1 + 121);
    let fixed = lines.iter().find(|l| l.contains("test.fixed")).unwrap();
    assert!(
        fixed.contains(",2026-11-25T20:00:00Z,") && fixed.contains("\"'=HYPERLINK(\"\"https://evil.example\"\")\"")
    );
    assert!(!text.contains(",=HYPERLINK"));
    let bulk = reader.client.get(reader.url("/console/audit.csv?action=test.bulk")).send().await.unwrap();
    assert_eq!(bulk.text().await.unwrap().split("\r\n").filter(|l| !l.is_empty()).count(), 121);
    assert!(
        third.body.contains("href=\"/console/audit.csv?action=test.bulk&#38;actor=&#38;object=&#38;from=&#38;to=\"")
    );

    // Console readers only.
    let bank = admin_of_new_organisation(&platform, &bin("99018000022"), "Curious Bank JSC", "curious.admin").await;
    assert_eq!(bank.get("/console/audit").await.status, 403);
    assert_eq!(bank.get("/console/audit.csv").await.status, 403);
    let stranger = Browser::new(&platform);
    assert!(stranger.get("/console/audit").await.url.ends_with("/login"));
    assert!(stranger.get("/console/audit.csv").await.url.ends_with("/login"));
    platform.shutdown().await;
}

/// A customer who passed both factors is journalled as the pseudonymous `customer:<id>` — never as
/// "unidentified", never by IIN.
#[tokio::test(flavor = "multi_thread")]
async fn a_verified_customer_is_journalled_by_pseudonym() {
    let platform = Platform::start().await;
    let iin = common::consent::iin(81);
    let customer = Browser::customer(&platform);
    let page = common::consent::identify(&platform, &customer, "/my/start", &iin, "+77013330081").await;
    assert!(page.url.ends_with("/my"), "{}", page.url);
    let conn = db(&platform);
    let id: i64 = conn.query_row("SELECT id FROM customers WHERE iin = ?1", [&iin], |r| r.get(0)).unwrap();
    let actors: Vec<String> = conn
        .prepare("SELECT actor FROM audit_log WHERE action = 'trust.customer.verified'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(actors, [format!("customer:{id}")]);
    let leaked: i64 = conn
        .query_row("SELECT count(*) FROM audit_log WHERE instr(actor || coalesce(detail, ''), ?1) > 0", [&iin], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(leaked, 0);
    platform.shutdown().await;
}

/// The home page leads each kind of visitor: customers to their consents, organisations to sign in or register,
/// developers to the guides and the standard; a signed-in person to their workspace. (The demo's way to its sample
/// application is checked by the demo's walk, `e2e_demo`.)
#[tokio::test(flavor = "multi_thread")]
async fn the_home_page_leads_each_kind_of_visitor() {
    let platform = Platform::start().await;
    let home = Browser::new(&platform).get("/").await;
    assert_eq!(home.status, 200);
    for (way, link) in [
        ("way-customers", "/my"),
        ("way-organisations", "/login"),
        ("way-organisations", "/register"),
        ("way-organisations", "/marketplace"),
        ("way-developers", "/docs"),
        ("way-developers", "/standard"),
    ] {
        let start = home.body.find(&format!("id=\"{way}\"")).unwrap_or_else(|| panic!("no {way}"));
        let card = &home.body[start..start + home.body[start..].find("</div>").unwrap()];
        assert!(card.contains(&format!("href=\"{link}\"")), "{way} lacks {link}: {card}");
    }
    assert!(!home.body.contains("id=\"demo-way\""), "the demo's way without the demo");
    let bank = admin_of_new_organisation(&platform, &bin("99018000033"), "Home Bank JSC", "home.admin").await;
    let page = bank.get("/").await;
    assert!(page.body.contains("href=\"/org\"") && who(&page).contains("Aigerim Sadykova"), "{}", page.body);
    assert!(!page.body.contains("href=\"/login\""));
    platform.shutdown().await;
}

/// The cell of the table row that holds `marker`, in the column headed `heading` (tags dropped).
fn cell(body: &str, marker: &str, heading: &str) -> String {
    let table_start = body[..body.find(marker).unwrap_or_else(|| panic!("no {marker}"))].rfind("<table").unwrap();
    let table = &body[table_start..];
    let column = table_headings(table)[0].iter().position(|h| h == heading).unwrap_or_else(|| panic!("no {heading}"));
    let row_start = table.find(marker).unwrap();
    let row_start = table[..row_start].rfind("<tr").unwrap();
    let row = &table[row_start..row_start + table[row_start..].find("</tr>").unwrap()];
    let raw = row.split("<td").nth(column + 1).unwrap();
    let raw = raw.split_once('>').unwrap().1.split("</td>").next().unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "Last check" reads the same on the APIs' list and their health overview (the newest run of each environment,
/// scheduled or publication, taken together, in local time); an API's name leads to its page, which shows the
/// latest sandbox and production runs and the earlier ones; certificates' kinds are words.
#[tokio::test(flavor = "multi_thread")]
async fn last_check_means_one_thing_on_every_console_page() {
    use crate::common::exchange::{BankPlan, world_with};
    let w = world_with(&[BankPlan::new("Altyn Bank", "99034000001")], |c| {
        c.sandbox.check_interval_secs = 1;
        c.sandbox.check_jitter_secs = 0;
    })
    .await;
    let platform = &w.s.platform;
    let api = w.banks[0].api_id;
    common::eventually("two scheduled runs", std::time::Duration::from_secs(30), async || {
        let runs = common::participant::count(platform, &format!("SELECT count(*) FROM api_runs WHERE api_id = {api}"));
        if runs >= 4 { Ok(()) } else { Err(runs) }
    })
    .await;
    let password = operator_user(platform, "check.reader", Role::OperatorStaff).await;
    let mut reader = Browser::new(platform);
    reader.sign_in("check.reader", &password).await;
    let link = format!("<a href=\"/console/apis/{api}/health\">");
    let apis = reader.get("/console/apis").await;
    assert!(apis.body.contains(&link), "the API's name does not lead to its page");
    let health = reader.get("/console/apis/health").await;
    // Runs keep coming every second: read both pages until they were drawn between the same two runs.
    let (mut on_list, mut on_health) = (cell(&apis.body, &link, "Last check"), cell(&health.body, &link, "Last check"));
    for _ in 0..5 {
        if on_list == on_health {
            break;
        }
        on_list = cell(&reader.get("/console/apis").await.body, &link, "Last check");
        on_health = cell(&reader.get("/console/apis/health").await.body, &link, "Last check");
    }
    assert_eq!(on_list, on_health);
    assert!(on_list.starts_with("Passed20"), "{on_list}");
    let page = reader.get(&format!("/console/apis/{api}/health")).await;
    for id in ["latest-sandbox", "latest-production"] {
        let start = page.body.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no {id}"));
        let dd = &page.body[start..start + page.body[start..].find("</dd>").unwrap()];
        assert!(dd.contains("Passed") && dd.contains("href=\"#runs\""), "{dd}");
    }
    page.assert_contains("<table id=\"runs\">")
        .assert_contains("<td>Sandbox</td>")
        .assert_contains("<td>Production</td>");
    assert_no_repeated_heading("/console/apis/{id}/health", &page.body);

    let certificates = reader.get("/console/certificates").await;
    certificates.assert_contains("The platform&#39;s own client certificate");
    assert!(!certificates.body.contains(">platform_client<") && !certificates.body.contains(">issuing_ca<"));
    w.s.platform.shutdown().await;
}
