//! The reference bank's book: customers, accounts and a year of transactions per account, all derived from the seed.
//!
//! Nothing is stored. Customers and accounts are made once at start; each account's transactions are generated day
//! by day from `(seed, account, day)` — so any day looks the same whenever it is asked for — and kept in memory as
//! one `History` per account, rebuilt when the date changes (the history is a sliding year ending now). Balances are
//! the opening balance at the start of that year plus the booked transactions since, so every balance, running
//! balance and transaction list agrees.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use crate::kz;
use crate::standard::SANDBOX_CUSTOMERS;

const DAY: i64 = 86_400;
/// Days of history before today.
const HISTORY_DAYS: i64 = 365;

/// SplitMix64: small and fast, and unlike a library generator its sequence can never change with an upgrade — the
/// book of a seed must stay the same across versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1).max(1) as u64;
        lo + (self.next() % span) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        if items.is_empty() {
            return fallback;
        }
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// A well-mixed hash of a few numbers: the seed of every random choice.
fn mix(parts: &[u64]) -> u64 {
    let mut rng = Rng(0x006b_6f70_6972);
    for part in parts {
        rng.0 ^= *part;
        rng.next();
    }
    rng.next()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    Kzt,
    Usd,
}

impl Currency {
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Kzt => "KZT",
            Currency::Usd => "USD",
        }
    }
}

struct City {
    /// As printed on card slips.
    upper: &'static str,
    utility: &'static str,
}

const CITIES: [City; 4] = [
    City { upper: "ALMATY", utility: "Alseco (Almaty utilities)" },
    City { upper: "ASTANA", utility: "Astana-ERC" },
    City { upper: "SHYMKENT", utility: "Shymkent Su" },
    City { upper: "KARAGANDA", utility: "Karaganda ERC" },
];

const EMPLOYERS: [&str; 12] = [
    "Kazakhtelecom JSC",
    "Air Astana JSC",
    "KEGOC JSC",
    "Astana IT University",
    "Chocofamily Holding LLP",
    "Kcell JSC",
    "City Clinical Hospital No. 7",
    "School-Lyceum No. 38",
    "KazMunayGas NC JSC",
    "Technodom Operator JSC",
    "Almaty City Akimat",
    "BI Group Holding",
];
const PENSION_PAYER: &str = "State Pension Payment Centre";

const GROCERIES: [(&str, &str); 6] = [
    ("Magnum Cash&Carry", "5411"),
    ("Magnum Cash&Carry", "5411"),
    ("Small", "5411"),
    ("Galmart", "5411"),
    ("Anvar", "5411"),
    ("Metro Cash&Carry", "5411"),
];
const TAXI: (&str, &str) = ("Yandex Go", "4121");
const CAFES: [(&str, &str); 7] = [
    ("Coffee Boom", "5814"),
    ("Del Papa", "5812"),
    ("Navat", "5812"),
    ("Rumi", "5812"),
    ("Starbucks", "5814"),
    ("Dodo Pizza", "5814"),
    ("Salam Bro", "5814"),
];
const PHARMACIES: [(&str, &str); 2] = [("Europharma", "5912"), ("Biosfera", "5912")];
const FUEL: [(&str, &str); 3] = [("Helios", "5541"), ("Qazaq Oil", "5541"), ("Sinooil", "5541")];
const SHOPS: [(&str, &str); 6] = [
    ("Wildberries", "5999"),
    ("Kaspi Magazin", "5399"),
    ("Meloman", "5942"),
    ("Kinopark", "7832"),
    ("LC Waikiki", "5651"),
    ("Sulpak", "5732"),
];
const BIG_SHOPS: [(&str, &str); 3] = [("Technodom", "5732"), ("Air Astana", "4511"), ("Sulpak", "5732")];
const ABROAD: [(&str, &str); 5] = [
    ("STEAMGAMES.COM", "5816"),
    ("APPLE.COM/BILL", "5818"),
    ("BOOKING.COM", "4722"),
    ("SPOTIFY", "5815"),
    ("AMAZON.COM", "5942"),
];
const MOBILE: [&str; 3] = ["Beeline Kazakhstan", "Kcell", "Tele2 Kazakhstan"];
const INTERNET: &str = "Kazakhtelecom";
const PEOPLE: [&str; 10] = [
    "Aidos S.",
    "Madina K.",
    "Yerbol T.",
    "Asel N.",
    "Dmitry P.",
    "Gulzhan A.",
    "Nurbol Zh.",
    "Olga M.",
    "Bekzat O.",
    "Ainur B.",
];

const MALE_FIRST: [&str; 14] = [
    "Arman",
    "Nurlan",
    "Yerzhan",
    "Askar",
    "Bauyrzhan",
    "Dauren",
    "Timur",
    "Alibek",
    "Kanat",
    "Ruslan",
    "Azamat",
    "Olzhas",
    "Zhandos",
    "Sergei",
];
const FEMALE_FIRST: [&str; 14] = [
    "Aliya", "Dana", "Gulnara", "Madina", "Zhanna", "Aizhan", "Dinara", "Saltanat", "Asel", "Kamila", "Ainur",
    "Botagoz", "Togzhan", "Elena",
];
/// Father's names with the patronymic of a son and of a daughter.
const PATRONYMICS: [(&str, &str); 10] = [
    ("Nurlanovich", "Nurlanovna"),
    ("Serikovich", "Serikovna"),
    ("Bolatovich", "Bolatovna"),
    ("Maratovich", "Maratovna"),
    ("Kairatovich", "Kairatovna"),
    ("Yerlanovich", "Yerlanovna"),
    ("Askarovich", "Askarovna"),
    ("Dauletovich", "Dauletovna"),
    ("Amangeldievich", "Amangeldievna"),
    ("Viktorovich", "Viktorovna"),
];
const SURNAMES: [(&str, &str); 14] = [
    ("Akhmetov", "Akhmetova"),
    ("Omarov", "Omarova"),
    ("Nurpeisov", "Nurpeisova"),
    ("Iskakov", "Iskakova"),
    ("Suleimenov", "Suleimenova"),
    ("Abenov", "Abenova"),
    ("Kassymov", "Kassymova"),
    ("Mukhamedzhanov", "Mukhamedzhanova"),
    ("Utepov", "Utepova"),
    ("Kenzhebayev", "Kenzhebayeva"),
    ("Baimukhanov", "Baimukhanova"),
    ("Yessenov", "Yessenova"),
    ("Zhumabayev", "Zhumabayeva"),
    ("Ivanov", "Ivanova"),
];
const POT_NICKNAMES: [&str; 4] = ["Savings pot", "Family budget", "Travel", "Deposit top-ups"];

/// Customers made up beyond the sandbox ones.
const GENERATED_CUSTOMERS: usize = 20;

/// How the sandbox customers bank (same order as `SANDBOX_CUSTOMERS`): city, employer (None: pensioner), monthly
/// income in tenge, extra KZT accounts, whether they keep a USD account.
const SANDBOX_PLANS: [(usize, Option<&str>, i64, u8, bool); 5] = [
    (0, Some("Chocofamily Holding LLP"), 650_000, 1, true),
    (1, Some("KEGOC JSC"), 900_000, 0, true),
    (0, Some("Technodom Operator JSC"), 320_000, 0, false),
    (1, Some("KazMunayGas NC JSC"), 1_200_000, 2, true),
    (2, None, 180_000, 1, false),
];

pub struct Customer {
    pub iin: String,
    pub name: String,
    city: usize,
    employer: Option<&'static str>,
    /// Monthly income in tiyn.
    income: i64,
    pots: u8,
    usd: bool,
    key: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The salary account: income, spending, transfers.
    Main,
    /// A second KZT account fed from the main one.
    Pot(u8),
    Usd,
}

pub struct Account {
    pub id: String,
    pub customer: usize,
    pub iban: String,
    pub currency: Currency,
    pub nickname: Option<&'static str>,
    /// Unix time of the opening day.
    pub opened: i64,
    role: Role,
    key: u64,
    /// Balance at the start of the history, in minor units.
    opening_balance: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Card,
    CardAbroad,
    Salary,
    Pension,
    Utility,
    TransferOut,
    TransferIn,
    OwnOut,
    OwnIn,
    ExchangeOut,
    ExchangeIn,
}

/// One transaction, compact: texts are static and assembled only when answered.
#[derive(Debug, Clone, Copy)]
pub struct Txn {
    /// Booking time (Unix seconds).
    pub at: i64,
    pub id: u64,
    /// Minor units, never negative.
    pub amount: i64,
    pub credit: bool,
    pub pending: bool,
    pub kind: Kind,
    pub label: &'static str,
    pub mcc: Option<&'static str>,
    /// The booked balance after this transaction (booked ones only).
    pub balance_after: i64,
}

impl Txn {
    pub fn signed(&self) -> i64 {
        if self.credit { self.amount } else { -self.amount }
    }

    /// `TransactionId`.
    pub fn id_text(&self) -> String {
        format!("tx-{:016x}", self.id)
    }

    /// `TransactionReference`: an RRN for card payments, a payment order number otherwise.
    pub fn reference(&self) -> String {
        match self.kind {
            Kind::Card | Kind::CardAbroad => format!("{:012}", self.id % 1_000_000_000_000),
            _ => format!("KP{:010}", self.id % 10_000_000_000),
        }
    }

    /// `TransactionInformation`, the statement line.
    pub fn information(&self, city: &str) -> String {
        let label = self.label;
        match self.kind {
            Kind::Card => format!("Card payment, {label}, {city} KZ"),
            Kind::CardAbroad => format!("Card payment, {label}"),
            Kind::Salary => format!("Salary, {label}"),
            Kind::Pension => format!("Pension payment, {label}"),
            Kind::Utility => format!("Payment for services, {label}"),
            Kind::TransferOut => format!("Kaspi transfer to {label}"),
            Kind::TransferIn => format!("Kaspi transfer from {label}"),
            Kind::OwnOut => "Transfer to own account".to_string(),
            Kind::OwnIn => "Transfer from own account".to_string(),
            Kind::ExchangeOut | Kind::ExchangeIn => "Currency exchange KZT to USD".to_string(),
        }
    }

    /// When the money moved: card payments settle the next day; a pending one has not settled.
    pub fn value_at(&self) -> Option<i64> {
        match (self.pending, self.kind) {
            (true, _) => None,
            (false, Kind::Card | Kind::CardAbroad) => Some(self.at + DAY),
            (false, _) => Some(self.at),
        }
    }
}

/// An account's transactions over the sliding year, oldest first.
pub struct History {
    /// The day (days since the Unix epoch) this history ends on.
    pub day: i64,
    pub txns: Vec<Txn>,
    pub opening_balance: i64,
    /// Each transaction's JSON, Basic and Detail, made on first demand: a transaction's rendering never changes
    /// within the day, and the newest pages are asked for again and again.
    rendered: Vec<[OnceLock<Box<str>>; 2]>,
}

impl History {
    /// Transactions booked up to `now`: the ones of later today are not there yet.
    pub fn until(&self, now: i64) -> &[Txn] {
        let end = self.txns.partition_point(|t| t.at <= now);
        &self.txns[..end]
    }

    /// The booked balance at `now`.
    pub fn booked(&self, now: i64) -> i64 {
        self.until(now).iter().rev().find(|t| !t.pending).map_or(self.opening_balance, |t| t.balance_after)
    }

    /// The available balance at `now`: booked, less the debits still pending (all from the last two days).
    pub fn available(&self, now: i64) -> i64 {
        let since = (self.day - 1) * DAY;
        let recent = self.until(now).iter().rev().take_while(|t| t.at >= since);
        let pending: i64 = recent.filter(|t| t.pending).map(Txn::signed).sum();
        self.booked(now) + pending
    }

    /// The JSON of transaction `index` (Basic or Detail), rendered by `render` the first time it is asked for.
    pub fn rendered(&self, index: usize, detail: bool, render: impl FnOnce(&Txn) -> String) -> &str {
        match (self.rendered.get(index), self.txns.get(index)) {
            (Some(slots), Some(txn)) => slots[usize::from(detail)].get_or_init(|| render(txn).into_boxed_str()),
            _ => "",
        }
    }
}

/// Everything the bank holds.
pub struct Book {
    seed: u64,
    pub bank_code: String,
    pub customers: Vec<Customer>,
    pub accounts: Vec<Account>,
    by_id: HashMap<String, usize>,
    by_iin: HashMap<String, Vec<usize>>,
    histories: Vec<RwLock<Option<Arc<History>>>>,
}

impl Book {
    pub fn generate(seed: u64) -> Book {
        let bank_code = format!("{:03}", 100 + mix(&[seed, 1]) % 900);
        let mut customers = Vec::new();
        for (i, (sandbox, plan)) in SANDBOX_CUSTOMERS.iter().zip(SANDBOX_PLANS).enumerate() {
            let (city, employer, income, pots, usd) = plan;
            customers.push(Customer {
                iin: sandbox.iin.to_string(),
                name: sandbox.name.to_string(),
                city,
                employer,
                income: income * 100,
                pots,
                usd,
                key: mix(&[seed, 2, i as u64]),
            });
        }
        let mut iins: HashSet<String> = customers.iter().map(|c| c.iin.clone()).collect();
        let mut rng = Rng(mix(&[seed, 3]));
        while customers.len() < SANDBOX_CUSTOMERS.len() + GENERATED_CUSTOMERS {
            if let Some(customer) = made_up_customer(&mut rng, seed, customers.len())
                && iins.insert(customer.iin.clone())
            {
                customers.push(customer);
            }
        }

        let mut accounts = Vec::new();
        let mut numbers = HashSet::new();
        let mut ids = HashSet::new();
        for (index, customer) in customers.iter().enumerate() {
            let mut roles = vec![Role::Main];
            roles.extend((0..customer.pots).map(Role::Pot));
            if customer.usd {
                roles.push(Role::Usd);
            }
            for role in roles {
                let tag = match role {
                    Role::Main => 0,
                    Role::Pot(n) => 1 + u64::from(n),
                    Role::Usd => 100,
                };
                let key = mix(&[customer.key, tag]);
                let mut rng = Rng(key);
                let currency = if role == Role::Usd { Currency::Usd } else { Currency::Kzt };
                let (iban, id) = loop {
                    let number = format!("{}{:010}", currency.as_str(), rng.next() % 10_000_000_000);
                    let id = format!("acc-{:012x}", rng.next() >> 16);
                    if let Some(iban) = kz::kz_iban(&bank_code, &number)
                        && numbers.insert(iban.clone())
                        && ids.insert(id.clone())
                    {
                        break (iban, id);
                    }
                };
                // Opened between 2012 and the end of 2024.
                let opened = (rng.range(15_340, 20_088)) * DAY;
                let (nickname, opening_balance) = match role {
                    Role::Main => (Some("Main account"), customer.income * rng.range(30, 150) / 100),
                    Role::Pot(n) => (
                        Some(POT_NICKNAMES[usize::from(n) % POT_NICKNAMES.len()]),
                        customer.income * rng.range(50, 300) / 100,
                    ),
                    Role::Usd => (Some("USD account"), rng.range(200, 3_000) * 100),
                };
                accounts.push(Account {
                    id,
                    customer: index,
                    iban,
                    currency,
                    nickname,
                    opened,
                    role,
                    key,
                    opening_balance,
                });
            }
        }
        let by_id = accounts.iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect();
        let mut by_iin: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, account) in accounts.iter().enumerate() {
            by_iin.entry(customers[account.customer].iin.clone()).or_default().push(i);
        }
        let histories = accounts.iter().map(|_| RwLock::new(None)).collect();
        Book { seed, bank_code, customers, accounts, by_id, by_iin, histories }
    }

    /// The accounts of the customer with this IIN (none for a stranger).
    pub fn accounts_of(&self, iin: &str) -> &[usize] {
        self.by_iin.get(iin).map(Vec::as_slice).unwrap_or(&[])
    }

    /// An account by id, only when it belongs to the customer `iin`.
    pub fn account_of(&self, iin: &str, id: &str) -> Option<usize> {
        let index = *self.by_id.get(id)?;
        (self.customers[self.accounts[index].customer].iin == iin).then_some(index)
    }

    pub fn holder(&self, account: usize) -> &Customer {
        &self.customers[self.accounts[account].customer]
    }

    /// The city printed on the customer's card slips.
    pub fn city(&self, account: usize) -> &'static str {
        CITIES[self.holder(account).city % CITIES.len()].upper
    }

    /// The account's history ending on the day of `now`, built on the first call of each day.
    pub fn history(&self, account: usize, now: i64) -> Arc<History> {
        let today = now.div_euclid(DAY);
        let slot = &self.histories[account];
        if let Ok(current) = slot.read()
            && let Some(history) = current.as_ref()
            && history.day == today
        {
            return history.clone();
        }
        let built = Arc::new(self.build_history(account, today));
        if let Ok(mut current) = slot.write() {
            *current = Some(built.clone());
        }
        built
    }

    fn build_history(&self, account: usize, today: i64) -> History {
        let acc = &self.accounts[account];
        let customer = &self.customers[acc.customer];
        let mut txns = Vec::with_capacity(1_200);
        for day in today - HISTORY_DAYS..=today {
            let first = txns.len();
            self.day(acc, customer, day, &mut txns);
            txns[first..].sort_by_key(|t: &Txn| (t.at, t.id));
            // Card payments of the last two days may not have settled yet.
            for t in &mut txns[first..] {
                let recent = match today - day {
                    0 => t.id % 3 != 0,
                    1 => t.id % 4 == 0,
                    _ => false,
                };
                t.pending = recent && matches!(t.kind, Kind::Card | Kind::CardAbroad) && !t.credit;
            }
        }
        let mut balance = acc.opening_balance;
        for t in &mut txns {
            if !t.pending {
                balance += t.signed();
                t.balance_after = balance;
            }
        }
        let rendered = txns.iter().map(|_| Default::default()).collect();
        History { day: today, txns, opening_balance: acc.opening_balance, rendered }
    }

    /// The transactions of one account on one day (unsorted).
    fn day(&self, acc: &Account, customer: &Customer, day: i64, out: &mut Vec<Txn>) {
        let Ok(date) = time::Date::from_julian_day((day + 2_440_588) as i32) else {
            return;
        };
        let dom = date.day();
        let month = i64::from(date.year()) * 12 + i64::from(u8::from(date.month()));
        let mut rng = Rng(mix(&[self.seed, acc.key, day as u64]));
        let start = day * DAY;
        let mut seq = 0u64;
        let mut push = |rng: &mut Rng,
                        at: i64,
                        amount: i64,
                        credit: bool,
                        kind: Kind,
                        label: &'static str,
                        mcc: Option<&'static str>| {
            seq += 1;
            out.push(Txn {
                at,
                id: mix(&[acc.key, day as u64, seq, rng.next()]),
                amount: amount.max(1),
                credit,
                pending: false,
                kind,
                label,
                mcc,
                balance_after: 0,
            });
        };
        // Local daytime in Kazakhstan (UTC+5), 08:00 to 23:00.
        let daytime = |rng: &mut Rng| start + rng.range(3 * 3_600, 18 * 3_600 - 1);
        // Spending follows income; whole tenge, as card slips show.
        let scale = (customer.income as f64 / 60_000_000.0).clamp(0.4, 2.5);
        let tenge = |rng: &mut Rng, lo: i64, hi: i64| ((rng.range(lo, hi) as f64 * scale) as i64).max(1) * 100;
        // Movements between a customer's own accounts: the same amount and time on both sides.
        let monthly = |tag: u64| Rng(mix(&[customer.key, month as u64, tag]));

        match acc.role {
            Role::Main => {
                match customer.employer {
                    Some(employer) if dom == 10 || dom == 25 => {
                        let share = if dom == 10 { 40 } else { 60 };
                        let at = start + rng.range(4 * 3_600, 6 * 3_600);
                        push(&mut rng, at, customer.income * share / 100, true, Kind::Salary, employer, None);
                    }
                    None if dom == 20 => {
                        let at = start + rng.range(4 * 3_600, 6 * 3_600);
                        push(&mut rng, at, customer.income, true, Kind::Pension, PENSION_PAYER, None);
                    }
                    _ => {}
                }
                if dom == 5 {
                    let at = daytime(&mut rng);
                    let amount = tenge(&mut rng, 15_000, 40_000);
                    let utility = CITIES[customer.city % CITIES.len()].utility;
                    push(&mut rng, at, amount, false, Kind::Utility, utility, None);
                }
                if dom == 7 {
                    let at = daytime(&mut rng);
                    let amount = rng.range(2_990, 6_990) * 100;
                    let operator = MOBILE[(customer.key % MOBILE.len() as u64) as usize];
                    push(&mut rng, at, amount, false, Kind::Utility, operator, None);
                }
                if dom == 12 {
                    let at = daytime(&mut rng);
                    let amount = rng.range(7_990, 12_990) * 100;
                    push(&mut rng, at, amount, false, Kind::Utility, INTERNET, None);
                }
                let groceries = match rng.range(0, 19) {
                    0..=6 => 0,
                    7..=15 => 1,
                    _ => 2,
                };
                for _ in 0..groceries {
                    let (name, mcc) = rng.pick(&GROCERIES, GROCERIES[0]);
                    let (at, amount) = (daytime(&mut rng), tenge(&mut rng, 1_500, 12_000));
                    push(&mut rng, at, amount, false, Kind::Card, name, Some(mcc));
                }
                let card = |rng: &mut Rng, p: f64, merchants: &[(&'static str, &'static str)], lo, hi| {
                    if rng.chance(p) {
                        let (name, mcc) = rng.pick(merchants, TAXI);
                        Some((daytime(rng), tenge(rng, lo, hi), name, mcc))
                    } else {
                        None
                    }
                };
                let picks = [
                    card(&mut rng, 0.4, &[TAXI], 700, 4_500),
                    card(&mut rng, 0.3, &CAFES, 1_500, 11_000),
                    card(&mut rng, 0.07, &PHARMACIES, 1_200, 9_000),
                    card(&mut rng, if customer.key.is_multiple_of(2) { 0.1 } else { 0.0 }, &FUEL, 8_000, 22_000),
                    card(&mut rng, 0.06, &SHOPS, 3_000, 25_000),
                    card(&mut rng, 0.005, &BIG_SHOPS, 60_000, 250_000),
                ];
                for (at, amount, name, mcc) in picks.into_iter().flatten() {
                    push(&mut rng, at, amount, false, Kind::Card, name, Some(mcc));
                }
                if rng.chance(0.1) {
                    let (at, amount, who) = (daytime(&mut rng), tenge(&mut rng, 3_000, 50_000), rng.pick(&PEOPLE, ""));
                    push(&mut rng, at, amount, false, Kind::TransferOut, who, None);
                }
                if rng.chance(0.06) {
                    let (at, amount, who) = (daytime(&mut rng), tenge(&mut rng, 2_000, 40_000), rng.pick(&PEOPLE, ""));
                    push(&mut rng, at, amount, true, Kind::TransferIn, who, None);
                }
                if dom == 26 {
                    for pot in 0..customer.pots {
                        let (at, amount) = own_transfer(customer, start, monthly(u64::from(pot) + 1));
                        push(&mut rng, at, amount, false, Kind::OwnOut, "", None);
                    }
                }
                if dom == 27 && customer.usd {
                    let (at, kzt, _) = exchange(start, monthly(100), scale);
                    push(&mut rng, at, kzt, false, Kind::ExchangeOut, "", None);
                }
            }
            Role::Pot(pot) => {
                if dom == 26 {
                    let (at, amount) = own_transfer(customer, start, monthly(u64::from(pot) + 1));
                    push(&mut rng, at, amount, true, Kind::OwnIn, "", None);
                }
                if rng.chance(0.03) {
                    let (name, mcc) = rng.pick(&BIG_SHOPS, BIG_SHOPS[0]);
                    let (at, amount) = (daytime(&mut rng), tenge(&mut rng, 5_000, 40_000));
                    push(&mut rng, at, amount, false, Kind::Card, name, Some(mcc));
                }
            }
            Role::Usd => {
                if dom == 27 {
                    let (at, _, cents) = exchange(start, monthly(100), scale);
                    push(&mut rng, at, cents, true, Kind::ExchangeIn, "", None);
                }
                if rng.chance(0.04) {
                    let (name, mcc) = rng.pick(&ABROAD, ABROAD[0]);
                    let (at, cents) = (daytime(&mut rng), rng.range(199, 9_000));
                    push(&mut rng, at, cents, false, Kind::CardAbroad, name, Some(mcc));
                }
            }
        }
    }
}

/// The monthly top-up of a pot: 5–12 % of income, mid-morning.
fn own_transfer(customer: &Customer, start: i64, mut rng: Rng) -> (i64, i64) {
    let at = start + rng.range(5 * 3_600, 7 * 3_600);
    let amount = customer.income * rng.range(5, 12) / 100 / 100 * 100;
    (at, amount)
}

/// The monthly purchase of dollars: tenge spent, cents bought (at 460–520 tenge per dollar).
fn exchange(start: i64, mut rng: Rng, scale: f64) -> (i64, i64, i64) {
    let at = start + rng.range(6 * 3_600, 8 * 3_600);
    let kzt = ((rng.range(40_000, 120_000) as f64 * scale) as i64).max(1_000) * 100;
    let rate = rng.range(460, 520);
    (at, kzt, kzt / rate)
}

/// A customer made up from the seed: a valid IIN from a birth date, a name of the right gender, a city and income.
fn made_up_customer(rng: &mut Rng, seed: u64, index: usize) -> Option<Customer> {
    let female = rng.chance(0.5);
    let year = rng.range(1960, 2004);
    let (month, day) = (rng.range(1, 12), rng.range(1, 28));
    let century = match (year >= 2000, female) {
        (false, false) => 3,
        (false, true) => 4,
        (true, false) => 5,
        (true, true) => 6,
    };
    let first_11 = format!("{:02}{month:02}{day:02}{century}{:04}", year % 100, rng.range(0, 9_999));
    let iin = kz::with_control_digit(&first_11)?;
    let (first, patronymic, surname) = if female {
        let (_, p) = rng.pick(&PATRONYMICS, PATRONYMICS[0]);
        let (_, s) = rng.pick(&SURNAMES, SURNAMES[0]);
        (rng.pick(&FEMALE_FIRST, "Aliya"), p, s)
    } else {
        let (p, _) = rng.pick(&PATRONYMICS, PATRONYMICS[0]);
        let (s, _) = rng.pick(&SURNAMES, SURNAMES[0]);
        (rng.pick(&MALE_FIRST, "Arman"), p, s)
    };
    let pensioner = year < 1963;
    Some(Customer {
        iin,
        name: format!("{first} {patronymic} {surname}"),
        city: rng.range(0, CITIES.len() as i64 - 1) as usize,
        employer: (!pensioner).then(|| rng.pick(&EMPLOYERS, EMPLOYERS[0])),
        income: if pensioner { rng.range(120_000, 250_000) } else { rng.range(250_000, 1_200_000) } * 100,
        pots: match rng.range(0, 9) {
            0..=5 => 0,
            6..=8 => 1,
            _ => 2,
        },
        usd: rng.chance(0.3),
        key: mix(&[seed, 2, index as u64]),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const NOW: i64 = 1_780_000_000;

    #[test]
    fn the_same_seed_makes_the_same_book_and_another_seed_another() {
        let a = Book::generate(7);
        let b = Book::generate(7);
        let c = Book::generate(8);
        assert_eq!(a.customers.len(), 25);
        let ids = |book: &Book| book.accounts.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&c));
        let first = a.history(0, NOW);
        let again = b.history(0, NOW);
        assert_eq!(first.txns.len(), again.txns.len());
        assert!(first.txns.iter().zip(&again.txns).all(|(x, y)| x.id == y.id && x.amount == y.amount));
    }

    #[test]
    fn customers_accounts_and_ibans_are_valid() {
        let book = Book::generate(42);
        for customer in &book.customers {
            assert!(kz::Iin::parse(&customer.iin).is_ok(), "{}", customer.iin);
            let accounts = book.accounts_of(&customer.iin);
            assert!(!accounts.is_empty());
            assert!(accounts.iter().any(|&a| book.accounts[a].currency == Currency::Kzt));
        }
        for account in &book.accounts {
            let iban = kz::Iban::parse(&account.iban).unwrap();
            assert_eq!(iban.bank_code(), book.bank_code);
            assert!(account.id.len() <= 40);
        }
        assert!(book.accounts.iter().any(|a| a.currency == Currency::Usd));
        let sandbox = &SANDBOX_CUSTOMERS[0];
        assert_eq!(book.accounts_of(sandbox.iin).len(), 3);
        let theirs = book.accounts_of(sandbox.iin)[0];
        assert_eq!(book.account_of(sandbox.iin, &book.accounts[theirs].id), Some(theirs));
        assert_eq!(book.account_of(SANDBOX_CUSTOMERS[1].iin, &book.accounts[theirs].id), None);
    }

    #[test]
    fn a_year_of_history_with_consistent_balances() {
        let book = Book::generate(1);
        for account in 0..book.accounts.len() {
            let history = book.history(account, NOW);
            let txns = history.until(NOW);
            assert!(txns.windows(2).all(|w| w[0].at <= w[1].at));
            assert!(txns.iter().all(|t| t.at <= NOW && t.amount > 0));
            if let Some(first) = txns.first() {
                assert!(first.at >= NOW - 366 * DAY);
            }
            let booked: i64 = txns.iter().filter(|t| !t.pending).map(Txn::signed).sum();
            assert_eq!(history.booked(NOW), history.opening_balance + booked);
            let pending: i64 = txns.iter().filter(|t| t.pending).map(Txn::signed).sum();
            assert_eq!(history.available(NOW), history.booked(NOW) + pending);
        }
        let main = book.history(book.accounts_of(SANDBOX_CUSTOMERS[0].iin)[0], NOW);
        let txns = main.until(NOW);
        assert!(txns.len() > 300, "{}", txns.len());
        assert!(txns.iter().any(|t| t.kind == Kind::Salary && t.credit));
        assert!(txns.iter().any(|t| t.label == "Yandex Go"));
        assert!(txns.iter().any(|t| t.label == "Magnum Cash&Carry"));
        assert!(txns.iter().any(|t| t.pending), "some recent card payments are pending");
        let ids: HashSet<u64> = txns.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), txns.len(), "transaction ids are unique");
    }

    #[test]
    fn own_transfers_and_exchanges_match_on_both_sides() {
        let book = Book::generate(3);
        let iin = SANDBOX_CUSTOMERS[0].iin;
        let accounts = book.accounts_of(iin);
        let total = |index: usize, kind: Kind| -> i64 {
            book.history(accounts[index], NOW).until(NOW).iter().filter(|t| t.kind == kind).map(|t| t.amount).sum()
        };
        assert!(total(0, Kind::OwnOut) > 0);
        assert_eq!(total(0, Kind::OwnOut), total(1, Kind::OwnIn));
        assert!(total(2, Kind::ExchangeIn) > 0);
    }
}
