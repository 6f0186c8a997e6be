//! The standard's permission codes (OBIE v3.1): what a consent may allow and what each endpoint needs. They belong
//! to the served standard, so the consent registry, the gateway and the sandbox all take them from here.
//!
//! ```
//! use kopir::standard::Permission;
//! assert_eq!("ReadBalances".parse::<Permission>().ok(), Some(Permission::ReadBalances));
//! assert!("ReadEverything".parse::<Permission>().is_err());
//! ```

crate::text_enum! {
    /// The OBIE v3.1 permissions of the platform's account-information standard: the words consents store
    /// (`consents.permissions`, a JSON array) and send (`Permissions`). Ordered as declared (a stored set is sorted).
    #[derive(PartialOrd, Ord)]
    pub enum Permission {
        ReadAccountsBasic = "ReadAccountsBasic",
        ReadAccountsDetail = "ReadAccountsDetail",
        ReadBalances = "ReadBalances",
        ReadTransactionsBasic = "ReadTransactionsBasic",
        ReadTransactionsDetail = "ReadTransactionsDetail",
        ReadTransactionsCredits = "ReadTransactionsCredits",
        ReadTransactionsDebits = "ReadTransactionsDebits",
    }
}

impl Permission {
    /// The key of the plain-words description on the consent screen.
    pub fn text_key(self) -> &'static str {
        match self {
            Permission::ReadAccountsBasic => "consent.perm_accounts_basic",
            Permission::ReadAccountsDetail => "consent.perm_accounts_detail",
            Permission::ReadBalances => "consent.perm_balances",
            Permission::ReadTransactionsBasic => "consent.perm_transactions_basic",
            Permission::ReadTransactionsDetail => "consent.perm_transactions_detail",
            Permission::ReadTransactionsCredits => "consent.perm_transactions_credits",
            Permission::ReadTransactionsDebits => "consent.perm_transactions_debits",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_stored_and_sent_words_are_the_obie_codes() {
        let words: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            words,
            [
                "ReadAccountsBasic",
                "ReadAccountsDetail",
                "ReadBalances",
                "ReadTransactionsBasic",
                "ReadTransactionsDetail",
                "ReadTransactionsCredits",
                "ReadTransactionsDebits"
            ]
        );
        let json = serde_json::to_string(&[Permission::ReadBalances, Permission::ReadAccountsDetail]).unwrap();
        assert_eq!(json, r#"["ReadBalances","ReadAccountsDetail"]"#);
        let back: Vec<Permission> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [Permission::ReadBalances, Permission::ReadAccountsDetail]);
        assert!(Permission::ReadAccountsBasic < Permission::ReadTransactionsDebits);
    }
}
