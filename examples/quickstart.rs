//! The quickstart: an order whose items are stored out of line in an embedded
//! SQLite file, no server needed.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    description: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer: String,
    /// Stored out of line: the document carries `{"class_name", "id"}` instead.
    #[serde(with = "toast::external")]
    items: Vec<Item>,
}

#[tokio::main]
async fn main() -> toast::Result<()> {
    let path = std::env::temp_dir().join("toast-quickstart.db");
    let store = toast::Store::connect(&format!("sqlite://{}", path.display())).await?;

    let order = Order {
        order_id: 7,
        customer: "Ada".into(),
        items: vec![
            Item {
                sku: "A-1".into(),
                description: "Difference engine, ".repeat(20),
            },
            Item {
                sku: "B-2".into(),
                description: "Punched cards".into(),
            },
        ],
    };

    // Serialize: the items go to the store, the document keeps a reference.
    let json = toast::scope(store.clone(), toast::to_json(&order)).await??;
    println!("stored document ({} bytes):\n  {json}", json.len());

    // Deserialize: the reference is loaded back (one round trip per nesting level).
    let restored: Order = toast::scope(store.clone(), toast::from_json(&json)).await??;
    println!("restored value:\n  {restored:?}");
    assert_eq!(restored, order);

    let stats = store.stats();
    println!(
        "round trips: {} save, {} load; database file: {}",
        stats.save_calls,
        stats.load_calls,
        path.display()
    );
    Ok(())
}
