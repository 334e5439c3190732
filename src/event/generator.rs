//! [`EventGenerator`]: plausible cafe orders, drawn from the regulars and the
//! priced menu below. Pure: time is an argument.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::{CafeEvent, format_ts_utc};

/// Regulars at the campus cafe.
const CUSTOMERS: [&str; 20] = [
    "Aisha Khan",
    "Ben Carter",
    "Carlos Mendes",
    "Chen Wei",
    "Dana Levi",
    "Emeka Obi",
    "Fatima Zahra",
    "Grace Kim",
    "Hiro Tanaka",
    "Isabel Rossi",
    "Jonas Berg",
    "Kavya Iyer",
    "Liam O'Brien",
    "Maya Cohen",
    "Noah Schmidt",
    "Olga Petrova",
    "Priya Nair",
    "Rafael Souza",
    "Sofia García",
    "Tom Nguyen",
];

/// The menu, prices in cents so amounts are exact before the one division.
const MENU: [(&str, u32); 12] = [
    ("Espresso", 250),
    ("Americano", 300),
    ("Macchiato", 350),
    ("Iced Coffee", 360),
    ("Hot Chocolate", 380),
    ("Cappuccino", 400),
    ("Cold Brew", 410),
    ("Flat White", 420),
    ("Chai Latte", 430),
    ("Latte", 450),
    ("Matcha Latte", 470),
    ("Mocha", 480),
];

const MAX_QUANTITY: u32 = 4;

/// Produces plausible orders. With a seed the sequence (event ids included)
/// is the same on every run built with the same `rand` version.
#[derive(Debug, Clone)]
pub struct EventGenerator {
    rng: StdRng,
}

impl EventGenerator {
    /// `None` seeds from the thread-local generator, so runs differ.
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        EventGenerator { rng }
    }

    /// The next order, placed at `now`.
    pub fn next_event(&mut self, now: DateTime<Utc>) -> CafeEvent {
        let event_id = self.next_uuid().to_string();
        let customer_name = CUSTOMERS[self.rng.random_range(0..CUSTOMERS.len())].to_owned();
        let (drink, price_cents) = MENU[self.rng.random_range(0..MENU.len())];
        let quantity = self.rng.random_range(1..=MAX_QUANTITY);
        CafeEvent {
            event_id,
            customer_name,
            drink_name: drink.to_owned(),
            quantity,
            amount: amount_from_cents(price_cents * quantity),
            is_member: self.rng.random(),
            ts_utc: format_ts_utc(now),
        }
    }

    /// A v4 UUID from our rng rather than the OS, so seeded runs repeat.
    fn next_uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// IEEE division is correctly rounded, so 1890 / 100 is the same double as
/// the literal 18.9 and serialises as `18.9`, not `18.900000000000002`.
pub(super) fn amount_from_cents(cents: u32) -> f64 {
    f64::from(cents) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::order_time;
    use crate::event::validate_json_value;

    #[test]
    fn seeded_generators_repeat_and_seeds_differ() {
        let run = |seed| {
            let mut generator = EventGenerator::new(Some(seed));
            (0..20).map(|_| generator.next_event(order_time())).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn generated_events_are_valid_and_priced_from_the_menu() {
        let mut generator = EventGenerator::new(Some(1));
        for _ in 0..500 {
            let ev = generator.next_event(order_time());
            ev.validate().expect("generated event is valid");
            let id = uuid::Uuid::parse_str(&ev.event_id).expect("event_id is a uuid");
            assert_eq!(id.get_version_num(), 4);
            assert!(CUSTOMERS.contains(&ev.customer_name.as_str()));
            assert!((1..=MAX_QUANTITY).contains(&ev.quantity));
            let (_, price) = MENU.iter().find(|(name, _)| *name == ev.drink_name).expect("drink is on the menu");
            assert_eq!(ev.amount, amount_from_cents(price * ev.quantity));
            let text = serde_json::to_string(&ev.amount).expect("amount serialises");
            let decimals = text.split_once('.').map_or(0, |(_, frac)| frac.len());
            assert!(decimals <= 2, "amount {text} has float noise");
        }
    }

    #[test]
    fn latte_times_three_is_exact() {
        assert_eq!(amount_from_cents(450 * 3), 13.5);
        assert_eq!(serde_json::to_string(&amount_from_cents(630 * 3)).ok(), Some("18.9".to_owned()));
    }

    #[test]
    fn generated_events_satisfy_the_schema_rules() {
        let mut generator = EventGenerator::new(None);
        for _ in 0..100 {
            let ev = generator.next_event(Utc::now());
            let value = serde_json::to_value(&ev).expect("event serialises");
            assert!(validate_json_value(&value).is_ok(), "{value}");
        }
    }
}
