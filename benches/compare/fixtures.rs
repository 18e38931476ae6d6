//! The documents and items every workload reads and writes, built once per backend.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{err, R};

pub(crate) const ITEM_BYTES: usize = 1024;

/// The ~1 KiB item: an id, a name, a few tags, a text body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Item {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) body: String,
}

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
];

/// An item whose JSON is `size` bytes long (its body padded to fit).
pub(crate) fn make_item(i: u64, size: usize) -> Item {
    let mut item = Item {
        id: i,
        name: format!("item-{i:08}-r{:08}", 0),
        tags: vec![
            "claim-check".to_owned(),
            format!("shard-{}", i % 7),
            format!("group-{}", i % 13),
        ],
        body: String::new(),
    };
    let overhead = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(0);
    let want = size.saturating_sub(overhead);
    let mut body = String::with_capacity(want + 16);
    let mut w = usize::try_from(i).unwrap_or(0);
    while body.len() < want {
        body.push_str(WORDS[w % WORDS.len()]);
        body.push(' ');
        w = w.wrapping_mul(31).wrapping_add(7);
    }
    body.truncate(want);
    item.body = body;
    item
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ExtItem(#[serde(with = "toast::external")] pub(crate) Item);

/// `write_1k` / `read_1k`: 1,000 items, each stored out of line.
#[derive(Serialize, Deserialize)]
pub(crate) struct Doc {
    pub(crate) title: String,
    pub(crate) items: Vec<ExtItem>,
}

/// The same document with the items inline (the plain-serde baseline).
#[derive(Serialize, Deserialize)]
pub(crate) struct InlineDoc {
    pub(crate) title: String,
    pub(crate) items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Section {
    name: String,
    items: Vec<ExtItem>,
}

#[derive(Serialize, Deserialize)]
struct ExtSection(#[serde(with = "toast::external")] Section);

#[derive(Serialize, Deserialize)]
pub(crate) struct Group {
    name: String,
    sections: Vec<ExtSection>,
}

#[derive(Serialize, Deserialize)]
struct ExtGroup(#[serde(with = "toast::external")] Group);

/// `nested_3`: 10 groups → 100 sections → 1,000 items, externals three deep.
#[derive(Serialize, Deserialize)]
pub(crate) struct NestedDoc {
    title: String,
    groups: Vec<ExtGroup>,
}

#[derive(Serialize, Deserialize)]
struct InlineSection {
    name: String,
    items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
struct InlineGroup {
    name: String,
    sections: Vec<InlineSection>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct InlineNested {
    title: String,
    groups: Vec<InlineGroup>,
}

/// The `big_doc` baseline's document: ids in place of the items.
#[derive(Serialize, Deserialize)]
pub(crate) struct IdDoc {
    pub(crate) title: String,
    pub(crate) ids: Vec<Uuid>,
}

/// `read_1k`'s claim check by hand: the document with references in place
/// of the items, as toast writes it, resolved without toast.
#[derive(Serialize, Deserialize)]
pub(crate) struct ClaimDoc<'a> {
    pub(crate) title: String,
    #[serde(borrow)]
    pub(crate) items: Vec<ClaimRef<'a>>,
}

impl ClaimDoc<'static> {
    /// The document of references to `payloads`, each an `Item`.
    pub(crate) fn of(title: &str, payloads: &[(Uuid, Bytes)]) -> Self {
        ClaimDoc {
            title: title.to_owned(),
            items: payloads
                .iter()
                .map(|(id, _)| ClaimRef {
                    class_name: "Item",
                    id: *id,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ClaimRef<'a> {
    pub(crate) class_name: &'a str,
    pub(crate) id: Uuid,
}

/// Everything the workloads share, built once per backend.
pub(crate) struct Fixture {
    pub(crate) items: Vec<Item>,
    pub(crate) payloads: Vec<(Uuid, Bytes)>,
    pub(crate) doc: Doc,
    pub(crate) inline_json: String,
    /// [`ClaimDoc`] of `payloads`' ids.
    pub(crate) claim_json: String,
    pub(crate) nested: NestedDoc,
    pub(crate) nested_inline_json: String,
}

/// Each item's JSON under a new id: what a baseline writes.
pub(crate) fn payloads_of(items: &[Item]) -> R<Vec<(Uuid, Bytes)>> {
    items
        .iter()
        .map(|it| {
            Ok((
                Uuid::new_v4(),
                Bytes::from(serde_json::to_vec(it).map_err(err)?),
            ))
        })
        .collect()
}

impl Fixture {
    pub(crate) fn new() -> R<Self> {
        let items: Vec<Item> = (0..1000).map(|i| make_item(i, ITEM_BYTES)).collect();
        let payloads = payloads_of(&items)?;
        let doc = Doc {
            title: "one thousand items".into(),
            items: items.iter().cloned().map(ExtItem).collect(),
        };
        let inline_json = serde_json::to_string(&InlineDoc {
            title: doc.title.clone(),
            items: items.clone(),
        })
        .map_err(err)?;
        let claim_json =
            serde_json::to_string(&ClaimDoc::of(&doc.title, &payloads)).map_err(err)?;
        let mut groups = Vec::new();
        let mut inline_groups = Vec::new();
        for g in 0..10 {
            let mut sections = Vec::new();
            let mut inline_sections = Vec::new();
            for s in 0..10 {
                let slice = &items[(g * 100 + s * 10)..(g * 100 + s * 10 + 10)];
                sections.push(ExtSection(Section {
                    name: format!("section {g}.{s}"),
                    items: slice.iter().cloned().map(ExtItem).collect(),
                }));
                inline_sections.push(InlineSection {
                    name: format!("section {g}.{s}"),
                    items: slice.to_vec(),
                });
            }
            groups.push(ExtGroup(Group {
                name: format!("group {g}"),
                sections,
            }));
            inline_groups.push(InlineGroup {
                name: format!("group {g}"),
                sections: inline_sections,
            });
        }
        let nested = NestedDoc {
            title: "three levels".into(),
            groups,
        };
        let nested_inline_json = serde_json::to_string(&InlineNested {
            title: nested.title.clone(),
            groups: inline_groups,
        })
        .map_err(err)?;
        Ok(Fixture {
            items,
            payloads,
            doc,
            inline_json,
            claim_json,
            nested,
            nested_inline_json,
        })
    }
}

/// A content id computed by hand, as toast derives it (src/scope/write.rs):
/// a UUID (version 8) from the first 16 bytes of the
/// SHA-256 of the class name, a NUL byte and the value's bytes. The claim
/// check written by hand pays for the same hash.
pub(crate) fn content_id(class_name: &str, data: &[u8]) -> uuid::Uuid {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(class_name.as_bytes());
    hasher.update([0u8]);
    hasher.update(data);
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Uuid::new_v8(bytes)
}
