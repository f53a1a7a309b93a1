//! Phone normalisation (DESIGN.md section 3): one stored form per person, the digits of the
//! international number (E.164 without `+`), and the country in which numbers written without a
//! country code are read ([`PhoneCountry`]).
//!
//! Rules, in order:
//! 1. An extension (`доб. 123`, `доб 123`, `доп. 5`, `вн. 5`, `ext 5`, `ext. 5`, `x5`, `#12`)
//!    and everything after it is not part of the number; so is a second number after `,` or
//!    `;` (`8 912 345-67-89, 8 495 123-45-67` is the first one).
//! 2. A number written internationally (leading `+`, or `00`) keeps its country code as
//!    written: `+84 912 345 678` is `84912345678`, never Russian.
//! 3. A number written without a country code is read in the default country with
//!    libphonenumber's metadata (the `phonenumber` crate): trunk prefixes (`8` in RU/KZ/BY, `0`
//!    in most of Europe) are dropped and the country code is added, when the result is a valid
//!    number of that country.
//! 4. When libphonenumber cannot read a digit-bearing input, a conservative digits-only rule
//!    keeps the phone instead of dropping it: the digits as written (after `+`/`00`), and for
//!    the default country RU the Russian rules (an 11-digit `8...` becomes `7...`, a 10-digit
//!    `9...` gets `7`).
//!
//! Nothing here does I/O. libphonenumber's metadata is loaded once, on first use.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;

/// The country in which numbers written without a country code are read (ISO 3166 alpha-2,
/// one that libphonenumber has metadata for). [`PhoneCountry::RU`] by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhoneCountry {
    id: Id,
    /// The country's calling code (7 for RU and KZ).
    calling_code: u16,
}

/// A country code that is not ISO 3166 alpha-2 or that phone numbers have no rules for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a country whose phone numbers are known; give an ISO 3166 alpha-2 code such \
     as RU, KZ, BY, UZ or DE"
)]
pub struct PhoneCountryError(pub String);

impl PhoneCountry {
    /// Russia: the default when neither the integration nor the account names a country.
    pub const RU: PhoneCountry = PhoneCountry {
        id: Id::RU,
        calling_code: 7,
    };

    /// The ISO 3166 alpha-2 code, e.g. `RU`.
    pub fn as_str(&self) -> &str {
        self.id.as_ref()
    }
}

impl Default for PhoneCountry {
    fn default() -> Self {
        PhoneCountry::RU
    }
}

impl fmt::Display for PhoneCountry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PhoneCountry {
    type Err = PhoneCountryError;

    /// Case-insensitive (`kz` is `KZ`); surrounding spaces are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_uppercase();
        let err = || PhoneCountryError(s.trim().to_string());
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let id = Id::from_str(&code).map_err(|_| err())?;
        phonenumber::metadata::DATABASE
            .by_id(id.as_ref())
            .map(|meta| PhoneCountry {
                id,
                calling_code: meta.country_code(),
            })
            .ok_or_else(err)
    }
}

/// [`normalize_phone_in`] with the default country RU.
///
/// `+7 (912) 345-67-89`, `8 912 345 67 89`, `9123456789` and `8 (912) 345-67-89 доб. 123` all
/// give `79123456789`; `+84 912 345 678` gives `84912345678`.
pub fn normalize_phone(raw: &str) -> Option<String> {
    normalize_phone_in(raw, PhoneCountry::RU)
}

/// The stored form of a phone: digits of the international number (E.164 without `+`), or
/// `None` when the input holds no digits of a number. See the module doc for the rules.
pub fn normalize_phone_in(raw: &str, country: PhoneCountry) -> Option<String> {
    let written = Written::read(raw)?;
    if written.international {
        // `+` + digits: libphonenumber only strips a national prefix written after the code
        // (`+44 (0) 20 ...`); the country code stays as written.
        let mut plus = String::with_capacity(written.digits.len() + 1);
        plus.push('+');
        plus.push_str(&written.digits);
        return Some(match phonenumber::parse(None, &plus) {
            Ok(n) => e164_digits(&n),
            Err(_) => written.digits,
        });
    }
    Some(national_in(&written.digits, country).unwrap_or_else(|| fallback(written.digits, country)))
}

/// A number written without country code, read in `country`: `Some` only when libphonenumber
/// finds a valid number of that country.
///
/// The crate strips a leading `7` from a KZ `701 123 4567` as if it were the calling code and
/// then finds the rest invalid; so when the first reading is not valid, the digits are also
/// tried as the national significant number after the country's calling code.
pub(crate) fn national_in(digits: &str, country: PhoneCountry) -> Option<String> {
    if let Ok(n) = phonenumber::parse(Some(country.id), digits)
        && n.is_valid()
    {
        return Some(e164_digits(&n));
    }
    let full = format!("+{}{digits}", country.calling_code);
    match phonenumber::parse(None, &full) {
        Ok(n) if n.is_valid() => Some(e164_digits(&n)),
        _ => None,
    }
}

/// `digits` read as `+digits`, when that is a valid number of some country.
fn valid_international(digits: &str) -> Option<phonenumber::PhoneNumber> {
    let plus = format!("+{digits}");
    phonenumber::parse(None, &plus)
        .ok()
        .filter(|n| n.is_valid())
}

/// Longest extension glued onto a stored number that [`renormalize_stored`] cuts off.
const MAX_GLUED_EXTENSION: usize = 7;

/// Re-reads a phone *as stored* by an older version (whose rules kept extensions and applied
/// the Russian rules to every number), for `retailcrm-sync phones renormalize`. The raw input
/// is gone, so this works from the stored value and changes only what it can tell:
/// - a value with non-digits (written by hand or by the platform) is normalised as typed input;
/// - digits that already form a valid international number stay as they are, even when they
///   came from a misread foreign number (`+84 912 345 678` was stored as `74912345678`, a valid
///   Russian number: that cannot be recovered);
/// - otherwise the digits are read as a number of `country` written without code (`3432123456`
///   under RU, `0291234567` under BY; but `4951234567` is also the valid German +49 5123 4567,
///   so it stays); under a country other than RU an 11-digit `7...` is also
///   tried with the trunk `8` the old rules replaced (`70291234567` was `8 029 ...` in BY);
/// - otherwise an extension of up to 7 digits glued on the end is cut off, when what is left is
///   a valid number of `country` written in full, with its calling code or trunk prefix
///   (`89123456789123` was `8 912 345-67-89 доб. 123`; `912345678912` stays, it may as well be
///   a foreign number);
/// - anything else stays as stored.
///
/// `None` when the stored value holds no digits (the caller leaves such a value alone).
pub fn renormalize_stored(stored: &str, country: PhoneCountry) -> Option<String> {
    if !stored.bytes().all(|b| b.is_ascii_digit()) {
        return normalize_phone_in(stored, country);
    }
    if stored.is_empty() {
        return None;
    }
    if valid_international(stored).is_some() {
        return Some(stored.to_string());
    }
    if let Some(n) = national_in(stored, country) {
        return Some(n);
    }
    if country != PhoneCountry::RU
        && stored.len() == 11
        && stored.starts_with('7')
        && let Some(n) = national_in(&format!("8{}", &stored[1..]), country)
    {
        return Some(n);
    }
    // Only a number written in full (with the calling code or the trunk prefix) is taken apart:
    // a bare `9991234567` followed by more digits is too ambiguous.
    let code = country.calling_code.to_string();
    let trunk = phonenumber::metadata::DATABASE
        .by_id(country.as_str())
        .and_then(|m| m.national_prefix().map(str::to_string));
    let full = |n: &str| n.starts_with(&code) || trunk.as_deref().is_some_and(|t| n.starts_with(t));
    let shortest = stored.len().saturating_sub(MAX_GLUED_EXTENSION).max(1);
    for len in (shortest..stored.len()).rev() {
        let number = &stored[..len];
        if !full(number) {
            continue;
        }
        let own = valid_international(number)
            .filter(|n| n.code().value() == country.calling_code)
            .map(|n| e164_digits(&n))
            .or_else(|| national_in(number, country));
        if let Some(n) = own {
            return Some(n);
        }
    }
    Some(stored.to_string())
}

/// The digits-only rule for what libphonenumber cannot read (see the module doc).
fn fallback(mut digits: String, country: PhoneCountry) -> String {
    if country == PhoneCountry::RU {
        if digits.len() == 11 && digits.starts_with('8') {
            digits.replace_range(0..1, "7");
        } else if digits.len() == 10 && digits.starts_with('9') {
            digits.insert(0, '7');
        }
    }
    digits
}

fn e164_digits(n: &phonenumber::PhoneNumber) -> String {
    format!("{}{}", n.code().value(), n.national())
}

/// What was written: the digits of the number (extension cut off, `+`/`00` removed) and
/// whether it was written with a country code.
#[derive(Debug, PartialEq)]
struct Written {
    digits: String,
    international: bool,
}

/// Words and signs that start an extension (compared case-insensitively), and `,`/`;`, which
/// separate a second number that is not read.
const EXTENSION_MARKERS: [&str; 8] = ["доб", "доп", "вн", "ext", "x", "#", ",", ";"];

impl Written {
    fn read(raw: &str) -> Option<Written> {
        let first_digit = raw.find(|c: char| c.is_ascii_digit())?;
        let end = extension_start(raw, first_digit).unwrap_or(raw.len());
        let number = &raw[..end];
        let mut digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let mut international = number[..first_digit].contains('+');
        if !international && digits.starts_with("00") {
            digits.drain(..2);
            international = true;
        }
        if digits.is_empty() {
            return None;
        }
        Some(Written {
            digits,
            international,
        })
    }
}

/// Byte offset of the first extension marker after the first digit, if any.
fn extension_start(raw: &str, first_digit: usize) -> Option<usize> {
    raw.char_indices()
        .skip_while(|(i, _)| *i <= first_digit)
        .map(|(i, _)| i)
        .find(|&i| {
            EXTENSION_MARKERS
                .iter()
                .any(|m| starts_with_ignore_case(&raw[i..], m))
        })
}

fn starts_with_ignore_case(s: &str, lower_prefix: &str) -> bool {
    let mut chars = s.chars().flat_map(char::to_lowercase);
    lower_prefix.chars().all(|p| chars.next() == Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kz() -> PhoneCountry {
        "KZ".parse().unwrap()
    }

    #[test]
    fn russian_forms_give_one_number() {
        for raw in [
            "+7 (912) 345-67-89",
            "+79123456789",
            "8-912-345-67-89",
            "8 912 345 67 89",
            "8 (912) 345-67-89",
            "9123456789",
            " 7 912 3456789 ",
            "8 (912) 345-67-89 доб. 123",
            "8 (912) 345-67-89 Доб 123",
            "8 (912) 345-67-89 доп. 7",
            "+7 912 345 67 89 ext 5",
            "+7 912 345 67 89 ext. 5",
            "+7 912 345 67 89 EXT.5",
            "+7 912 345 67 89 x5",
            "8 912 345 67 89 #12",
            "тел.: 8 912 345 67 89",
            "8 912 345 67 89 вн. 12",
            "8 912 345 67 89, 8 495 123-45-67",
            "+7 912 345 67 89; +7 495 123 45 67",
        ] {
            assert_eq!(
                normalize_phone(raw).as_deref(),
                Some("79123456789"),
                "{raw}"
            );
        }
    }

    #[test]
    fn international_numbers_keep_their_country_code() {
        for (raw, want) in [
            ("+84 912 345 678", "84912345678"),
            ("+7 491 234-56-78", "74912345678"),
            ("+7 701 123 45 67", "77011234567"),
            ("+375 29 123-45-67", "375291234567"),
            ("+1 (415) 555-2671", "14155552671"),
            ("00 44 20 7946 0958", "442079460958"),
            ("+44 20 7946 0958", "442079460958"),
            // A national prefix written after the code is not part of the number.
            ("+44 (0) 20 7946 0958", "442079460958"),
            // Italian fixed lines keep their leading zero.
            ("+39 06 6982 1234", "390669821234"),
            ("+375 29 123-45-67 доб. 9", "375291234567"),
        ] {
            assert_eq!(normalize_phone(raw).as_deref(), Some(want), "{raw}");
        }
        // Vietnam and a Russian landline stay two numbers.
        assert_ne!(
            normalize_phone("+84 912 345 678"),
            normalize_phone("+7 491 234-56-78")
        );
    }

    #[test]
    fn numbers_without_code_are_read_in_the_default_country() {
        let kz = kz();
        for raw in [
            "8 701 123 45 67",
            "87011234567",
            "701 123 4567",
            "+7 701 123 45 67",
        ] {
            assert_eq!(
                normalize_phone_in(raw, kz).as_deref(),
                Some("77011234567"),
                "{raw}"
            );
        }
        let by: PhoneCountry = "by".parse().unwrap();
        assert_eq!(
            normalize_phone_in("8 029 123-45-67", by).as_deref(),
            Some("375291234567")
        );
        // A Moscow landline without code, read in RU.
        assert_eq!(
            normalize_phone("495 123-45-67").as_deref(),
            Some("74951234567")
        );
        // International numbers ignore the default country.
        assert_eq!(
            normalize_phone_in("+84 912 345 678", kz).as_deref(),
            Some("84912345678")
        );
    }

    #[test]
    fn unreadable_digits_fall_back_to_digits_only() {
        assert_eq!(normalize_phone("8123").as_deref(), Some("8123"));
        // Not a valid number anywhere, written with + : the digits as written.
        assert_eq!(normalize_phone("+999 123").as_deref(), Some("999123"));
        // The Russian trunk rules still apply to what libphonenumber rejects under RU.
        assert_eq!(
            normalize_phone("8 000 000 00 00").as_deref(),
            Some("70000000000")
        );
        // ...but not under another default country.
        assert_eq!(
            normalize_phone_in("8 000 000 00 00", kz()).as_deref(),
            Some("80000000000")
        );
    }

    #[test]
    fn no_digits_is_no_phone() {
        for raw in ["", "   ", "+", "abc", "нет телефона", "доб. ", "+ -"] {
            assert_eq!(normalize_phone(raw), None, "{raw:?}");
        }
        assert_eq!(normalize_phone("00"), None);
    }

    #[test]
    fn countries_parse_case_insensitively_and_are_checked() {
        assert_eq!("kz".parse::<PhoneCountry>().unwrap().as_str(), "KZ");
        assert_eq!(" RU ".parse::<PhoneCountry>().unwrap(), PhoneCountry::RU);
        for bad in ["", "R", "RUS", "ZZ", "1A", "Россия"] {
            let err = bad.parse::<PhoneCountry>().unwrap_err();
            assert!(err.to_string().contains("ISO 3166"), "{bad}: {err}");
        }
        assert_eq!(PhoneCountry::default(), PhoneCountry::RU);
    }

    #[test]
    fn stored_phones_are_re_read_where_that_is_safe() {
        let ru = PhoneCountry::RU;
        let by: PhoneCountry = "BY".parse().unwrap();
        let kz = kz();
        for (stored, country, want) in [
            // Already right: unchanged.
            ("79123456789", ru, "79123456789"),
            ("375291234567", ru, "375291234567"),
            ("442079460958", ru, "442079460958"),
            // The misread Vietnamese number is a valid Russian one: cannot be told apart.
            ("74912345678", ru, "74912345678"),
            // Extensions glued on by the old rules.
            ("89123456789123", ru, "79123456789"),
            ("791234567895", ru, "79123456789"),
            ("7912345678912", ru, "79123456789"),
            ("870112345675", kz, "77011234567"),
            // Stored without country code.
            ("3432123456", ru, "73432123456"),
            // ...unless the digits are also a valid foreign number (+49 5123 4567): ambiguous.
            ("4951234567", ru, "4951234567"),
            ("0291234567", by, "375291234567"),
            ("291234567", by, "375291234567"),
            // The old `8` -> `7` rule under another default country.
            ("70291234567", by, "375291234567"),
            // Hand-written values are normalised as input.
            ("+7 912 345-67-89", ru, "79123456789"),
            ("8 (912) 345-67-89 доб. 5", ru, "79123456789"),
            // Unknown: left as stored.
            ("8123", ru, "8123"),
            ("912345678912", ru, "912345678912"),
            ("999123456789012", ru, "999123456789012"),
        ] {
            assert_eq!(
                renormalize_stored(stored, country).as_deref(),
                Some(want),
                "{stored} in {country}"
            );
        }
        assert_eq!(renormalize_stored("", PhoneCountry::RU), None);
        assert_eq!(renormalize_stored("нет", PhoneCountry::RU), None);
    }

    /// Cost of one normalisation (run with `--nocapture` to see it); no assertion on time.
    #[test]
    fn measure_normalisation_cost() {
        let inputs = [
            "+7 (912) 345-67-89",
            "8 912 345 67 89",
            "9123456789",
            "+84 912 345 678",
            "+375 29 123-45-67",
            "8 (912) 345-67-89 доб. 123",
        ];
        normalize_phone(inputs[0]); // metadata load and regex compilation, once
        let rounds = 2_000;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            for raw in inputs {
                std::hint::black_box(normalize_phone(std::hint::black_box(raw)));
            }
        }
        let per = started.elapsed() / (rounds * inputs.len() as u32);
        println!("phone normalisation: {per:?} per number (this build's profile)");
    }
}
