//! Typed values as the database, the wire and the pages hold them: enums stored as fixed words and identifiers
//! checked once where they enter the platform, then carried as their own types.
//!
//! [`text_enum!`] declares an enum with its word for each variant; the word is what the database stores (`ToSql` /
//! `FromSql`), what JSON carries (`Serialize` / `Deserialize`) and what `Display` prints. A word the enum does not
//! know is an error — never a default — so a corrupt or newer row is noticed, not misread.
//!
//! ```
//! kopir::store::value::text_enum! {
//!     /// Where a thing stands.
//!     pub enum Stage { Draft = "draft", Published = "published" }
//! }
//! assert_eq!(Stage::Published.as_str(), "published");
//! assert_eq!("draft".parse::<Stage>().ok(), Some(Stage::Draft));
//! assert!("other".parse::<Stage>().is_err());
//! ```
//!
//! [`text_id!`] declares an identifier newtype over a `String` with its check, made only by `parse` (at the edge)
//! or read back from the database (checked again: a row that no longer passes is an error).
//!
//! ```
//! kopir::store::value::text_id! {
//!     /// A twelve-digit thing.
//!     pub struct Twelve, |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
//! }
//! assert!(Twelve::parse("123456789012").is_ok());
//! assert!(Twelve::parse("12345").is_err());
//! ```

/// A word or identifier that is not one of the type's values. Its message names the type and quotes (boundedly)
/// what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}")]
pub struct InvalidValue {
    pub kind: &'static str,
    pub value: String,
}

impl InvalidValue {
    pub fn new(kind: &'static str, value: &str) -> InvalidValue {
        let value = match value.char_indices().nth(64) {
            Some((end, _)) => format!("{}…", &value[..end]),
            None => value.to_string(),
        };
        InvalidValue { kind, value }
    }
}

/// Declares an enum stored and sent as fixed words. See the module's documentation.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $word:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word stored and sent for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::store::value::InvalidValue;

            fn from_str(word: &str) -> ::std::result::Result<$name, Self::Err> {
                match word {
                    $($word => Ok($name::$variant),)+
                    other => Err($crate::store::value::InvalidValue::new(stringify!($name), other)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> ::rusqlite::Result<::rusqlite::types::ToSqlOutput<'_>> {
                Ok(::rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl ::rusqlite::types::FromSql for $name {
            fn column_result(value: ::rusqlite::types::ValueRef<'_>) -> ::rusqlite::types::FromSqlResult<$name> {
                value.as_str()?.parse().map_err(|e| ::rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<$name, D::Error> {
                let word = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                word.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// Declares an identifier newtype over a checked `String`. See the module's documentation.
#[macro_export]
macro_rules! text_id {
    ($(#[$meta:meta])* $vis:vis struct $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(String);

        impl $name {
            /// The identifier, if `text` (surrounding spaces aside) is one.
            pub fn parse(text: &str) -> ::std::result::Result<$name, $crate::store::value::InvalidValue> {
                let text = text.trim();
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok($name(text.to_string()))
                } else {
                    Err($crate::store::value::InvalidValue::new(stringify!($name), text))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::store::value::InvalidValue;

            fn from_str(text: &str) -> ::std::result::Result<$name, Self::Err> {
                $name::parse(text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl ::rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> ::rusqlite::Result<::rusqlite::types::ToSqlOutput<'_>> {
                Ok(::rusqlite::types::ToSqlOutput::from(self.0.as_str()))
            }
        }

        impl ::rusqlite::types::FromSql for $name {
            fn column_result(value: ::rusqlite::types::ValueRef<'_>) -> ::rusqlite::types::FromSqlResult<$name> {
                $name::parse(value.as_str()?).map_err(|e| ::rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<$name, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub use crate::{text_enum, text_id};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rusqlite::Connection;

    text_enum! {
        /// A test enum.
        enum Colour { Red = "red", DarkBlue = "dark_blue" }
    }

    text_id! {
        /// A test identifier.
        struct Code, |s: &str| s.len() == 3
    }

    #[test]
    fn enums_round_trip_through_sqlite_and_json_and_refuse_unknown_words() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (c TEXT)").unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [Colour::DarkBlue]).unwrap();
        let back: Colour = conn.query_row("SELECT c FROM t", [], |r| r.get("c")).unwrap();
        assert_eq!(back, Colour::DarkBlue);
        assert_eq!(conn.query_row("SELECT c FROM t", [], |r| r.get::<_, String>(0)).unwrap(), "dark_blue");
        conn.execute("UPDATE t SET c = 'green'", []).unwrap();
        let err = conn.query_row("SELECT c FROM t", [], |r| r.get::<_, Colour>(0)).unwrap_err();
        assert!(err.to_string().contains("\"green\" is not a valid Colour"), "{err}");
        assert_eq!(serde_json::to_string(&Colour::Red).unwrap(), "\"red\"");
        assert!(serde_json::from_str::<Colour>("\"blue\"").is_err());
        assert_eq!(Colour::ALL.len(), 2);
    }

    #[test]
    fn identifiers_are_checked_when_made_and_when_read_back() {
        assert_eq!(Code::parse(" abc ").unwrap().into_string(), "abc");
        assert!(Code::parse("abcd").is_err());
        assert_eq!(Code::parse("xyz").unwrap().as_str(), "xyz");
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (c TEXT); INSERT INTO t VALUES ('toolong')").unwrap();
        assert!(conn.query_row("SELECT c FROM t", [], |r| r.get::<_, Code>(0)).is_err());
        assert!(serde_json::from_str::<Code>("\"xy\"").is_err());
        let long = "x".repeat(1000);
        assert!(Code::parse(&long).unwrap_err().to_string().len() < 120);
    }
}
