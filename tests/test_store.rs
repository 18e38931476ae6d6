//! `Store`: connect by URL, put/get/delete, tenants, listing, stats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde::{Deserialize, Serialize};
use support::hooked::Hooked;
use toast::{Reference, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Folder {
    #[serde(with = "toast::external")]
    notes: Vec<Note>,
}

#[tokio::test]
async fn put_get_delete() {
    let store = Store::connect("memory://").await.unwrap();
    let folder = Folder {
        notes: vec![Note { text: "a".into() }],
    };
    let r1 = store.put(&folder).await.unwrap();
    let r2 = store.put(&folder).await.unwrap();
    assert_ne!(r1.id, r2.id, "put always makes a new id");
    assert_eq!(r1.class_name, "Folder");
    assert_eq!(store.get::<Folder>(&r1).await.unwrap(), folder);
    assert_eq!(
        store.stats().save_calls,
        2,
        "one round trip per put, nested externals included"
    );
    assert!(store.delete(&r1).await.unwrap());
    assert!(!store.delete(&r1).await.unwrap());
    assert!(store.get::<Folder>(&r1).await.unwrap_err().is_not_found());
    assert_eq!(store.get::<Folder>(&r2).await.unwrap(), folder);
    let many: Vec<Folder> = store.get_many(&[r2.clone(), r2.clone()]).await.unwrap();
    assert_eq!(many.len(), 2);
}

#[tokio::test]
async fn get_checks_the_class_name() {
    let store = Store::memory();
    let r = store.put(&Note { text: "n".into() }).await.unwrap();
    let err = store.get::<Folder>(&r).await.unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("expected Folder, got Note"),
        "{err}"
    );
}

#[tokio::test]
async fn tenants_cannot_read_overwrite_or_delete_each_other() {
    let base = Store::memory();
    let a = base.tenant("alice");
    let b = base.tenant("bob");
    let secret = Note {
        text: "alice's".into(),
    };
    let r = a.put(&secret).await.unwrap();
    assert!(b.get::<Note>(&r).await.unwrap_err().is_not_found());
    assert!(b.record(&r).await.unwrap_err().is_not_found());
    assert!(
        !b.delete(&r).await.unwrap(),
        "bob cannot delete alice's record"
    );
    // Bob writing the same reference through a document writes his own record.
    #[derive(Serialize)]
    struct Holder {
        note: toast::External<Note>,
    }
    let forged = toast::External::with_id(
        Note {
            text: "bob's".into(),
        },
        r.id,
    );
    toast::scope(b.clone(), toast::to_json(&Holder { note: forged }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.get::<Note>(&r).await.unwrap(),
        secret,
        "alice's record untouched"
    );
    assert_eq!(b.get::<Note>(&r).await.unwrap().text, "bob's");
    assert_eq!(a.list_of::<Note>(0, 10).await.unwrap(), vec![r.clone()]);
    // Documents resolve in the reader's tenant.
    let doc = format!(r#"{{"class_name":"Note","id":"{}"}}"#, r.id);
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct One(#[serde(with = "toast::external")] Note);
    let carol = base.tenant("carol");
    let err = toast::scope(carol, toast::from_json::<One>(&doc))
        .await
        .unwrap()
        .err()
        .unwrap();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn list_is_newest_first_and_paged() {
    let store = Store::memory().tenant("lister");
    let mut refs = Vec::new();
    for i in 0..5 {
        refs.push(
            store
                .put(&Note {
                    text: i.to_string(),
                })
                .await
                .unwrap(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let all = store.list_of::<Note>(0, 100).await.unwrap();
    let newest_first: Vec<Reference> = refs.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);
    assert_eq!(store.list("Note", 1, 2).await.unwrap(), newest_first[1..3]);
    assert!(store.list("Note", 10, 2).await.unwrap().is_empty());
    assert!(store.list("Other", 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn named_memory_stores_share_data_across_connects() {
    let name = format!("memory://shared-{}", uuid::Uuid::new_v4());
    let one = Store::connect(&name).await.unwrap();
    let r = one
        .put(&Note {
            text: "kept".into(),
        })
        .await
        .unwrap();
    let two = Store::connect(&name).await.unwrap();
    assert_eq!(two.get::<Note>(&r).await.unwrap().text, "kept");
    let private = Store::connect("memory://").await.unwrap();
    assert!(private.get::<Note>(&r).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn stats_count_round_trips_and_records_and_are_shared_by_tenants() {
    let store = Store::memory();
    let t = store.tenant("t");
    let r = t
        .put(&Folder {
            notes: vec![Note { text: "x".into() }],
        })
        .await
        .unwrap();
    let _: Folder = t.get(&r).await.unwrap();
    t.delete(&r).await.unwrap();
    let _ = t.list("Folder", 0, 1).await.unwrap();
    let s = store.stats();
    assert_eq!((s.save_calls, s.records_saved), (1, 2));
    assert_eq!((s.load_calls, s.records_loaded), (2, 2));
    assert_eq!((s.delete_calls, s.list_calls), (1, 1));
}

#[tokio::test]
async fn a_backend_returning_foreign_records_cannot_leak_them() {
    // A broken backend that returns every record it has, whatever was asked.
    let leaked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (saved, all) = (leaked.clone(), leaked);
    let leaky = Hooked::on_save(move |records| saved.lock().unwrap().extend_from_slice(records))
        .and_on_load(move |_| all.lock().unwrap().clone());
    let store = Store::from_backend(leaky);
    let r = store
        .tenant("a")
        .put(&Note { text: "a".into() })
        .await
        .unwrap();
    assert!(store
        .tenant("b")
        .get::<Note>(&r)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn a_backend_that_builds_its_own_keys_is_read_like_any_other() {
    // Records under keys made anew from their text (new `Arc`s), as a
    // backend reading names back from storage would return them.
    let rebuilt = Hooked::on_load(|mut records| {
        for r in &mut records {
            r.key = toast::backend::Key::new(
                r.key.tenant.to_string(),
                r.key.class_name.to_string(),
                r.key.id,
            );
        }
        records
    });
    let store = Store::from_backend(rebuilt).tenant("t");
    let folder = Folder {
        notes: vec![Note {
            text: "kept".into(),
        }],
    };
    let r = store.put(&folder).await.unwrap();
    let back: Folder = store.get(&r).await.unwrap();
    assert_eq!(back.notes[0].text, "kept");
    assert_eq!(store.stats().records_loaded, 2);
}

#[tokio::test]
async fn a_flush_saves_its_records_in_the_order_their_values_were_serialized() {
    // What each save was given.
    type Saves = std::sync::Arc<std::sync::Mutex<Vec<Vec<toast::backend::Record>>>>;
    #[derive(Serialize)]
    struct Page {
        #[serde(with = "toast::external")]
        body: String,
    }
    #[derive(Serialize)]
    struct Book {
        #[serde(with = "toast::external")]
        cover: Page,
        pages: Vec<Page>,
    }
    let saves = Saves::default();
    let seen = saves.clone();
    let store = Store::from_backend(Hooked::on_save(move |records| {
        seen.lock().unwrap().push(records.to_vec())
    }));
    let page = |n: usize| Page {
        body: format!("page {n}"),
    };
    let book = Book {
        cover: Page {
            body: "cover".into(),
        },
        pages: (0..10).map(page).collect(),
    };
    toast::scope(store, toast::to_json(&book))
        .await
        .unwrap()
        .unwrap();
    let saves = saves.lock().unwrap();
    assert_eq!(saves.len(), 1, "one flush");
    let saved: Vec<(&str, &str)> = saves[0]
        .iter()
        .map(|r| (&*r.key.class_name, r.data_str().unwrap()))
        .collect();
    // The cover's body before the cover that holds it, then the pages' bodies
    // in the document's order (their content ids are in no order at all).
    let mut expected = vec![("String", "\"cover\"")];
    let pages: Vec<String> = (0..10).map(|n| format!("\"page {n}\"")).collect();
    assert_eq!(saved[0], expected[0]);
    assert_eq!(saved[1].0, "Page");
    expected.push(saved[1]);
    expected.extend(pages.iter().map(|p| ("String", p.as_str())));
    assert_eq!(saved, expected);
}

#[tokio::test]
async fn load_in_a_scope_shares_its_cache_so_rewriting_unchanged_values_stores_nothing() {
    let store = Store::memory();
    let folder = Folder {
        notes: vec![Note { text: "n".into() }],
    };
    let json = toast::scope(store.clone(), toast::to_json(&folder))
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let notes_ref: Reference = serde_json::from_value(v["notes"].clone()).unwrap();
    let before = store.stats();
    toast::scope(store.clone(), async {
        let notes: Vec<Note> = toast::load(&notes_ref).await.unwrap();
        let again: Vec<Vec<Note>> = toast::load_many(&[notes_ref.clone(), notes_ref.clone()])
            .await
            .unwrap();
        assert_eq!(again, vec![notes.clone(), notes.clone()]);
        // Writing the loaded value back unchanged buffers nothing.
        let rewritten = toast::to_json(&Folder { notes }).await.unwrap();
        assert_eq!(rewritten, json);
        let missing = toast::Reference::new("Vec<Note>", uuid::Uuid::new_v4());
        assert!(toast::load::<Vec<Note>>(&missing)
            .await
            .unwrap_err()
            .is_not_found());
    })
    .await
    .unwrap();
    let used = store.stats().since(&before);
    assert_eq!(
        used.load_calls, 2,
        "one for the first load, one for the missing reference"
    );
    assert_eq!(used.save_calls, 0);
    assert!(
        toast::load::<Vec<Note>>(&notes_ref)
            .await
            .unwrap_err()
            .is_validation(),
        "outside a scope"
    );
}

#[tokio::test]
async fn get_refuses_a_wrong_class_before_any_round_trip() {
    let store = Store::memory();
    let r = store.put(&Note { text: "n".into() }).await.unwrap();
    let loads = store.stats().load_calls;
    let err = store.get::<Folder>(&r).await.unwrap_err();
    assert!(err.is_validation(), "{err}");
    assert_eq!(store.stats().load_calls, loads, "checked before loading");
}

#[tokio::test]
async fn get_of_a_value_whose_external_is_gone_is_not_found() {
    let store = Store::memory();
    let folder = Folder {
        notes: vec![Note { text: "a".into() }],
    };
    let r = store.put(&folder).await.unwrap();
    let record = store.record(&r).await.unwrap();
    let inner = record.refs[0].clone();
    assert!(store.delete(&inner).await.unwrap());
    let err = store.get::<Folder>(&r).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_add_up_the_counts_of_every_thread() {
    // The counters are striped per thread (src/store.rs): what threads add
    // at once must all be in the sum, whichever stripes they used.
    let store = Store::memory();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let r = store.put(&format!("{t}/{i}")).await?;
                    assert_eq!(store.get::<String>(&r).await?, format!("{t}/{i}"));
                }
                Ok::<_, toast::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Plain OS threads too, each with a runtime of its own.
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let r = store.put(&t).await.unwrap();
                    assert!(store.delete(&r).await.unwrap());
                });
            });
        }
    });
    let stats = store.stats();
    assert_eq!(stats.save_calls, 16 * 25 + 4);
    assert_eq!(stats.records_saved, 16 * 25 + 4);
    assert_eq!(stats.load_calls, 16 * 25);
    assert_eq!(stats.records_loaded, 16 * 25);
    assert_eq!(stats.delete_calls, 4);
}

#[tokio::test]
async fn many_tenants_used_in_turn_on_one_thread_stay_apart() {
    // A context takes this thread's copy of its store's tenant, and a
    // thread keeps copies of a few stores' tenants: cycling through more
    // tenants than it keeps must still write and read each in its own.
    let store = Store::memory();
    let tenants: Vec<Store> = (0..9).map(|i| store.tenant(format!("t{i}"))).collect();
    let mut refs = Vec::new();
    for round in 0..3 {
        for (i, tenant) in tenants.iter().enumerate() {
            refs.push((i, tenant.put(&format!("{i}:{round}")).await.unwrap()));
        }
    }
    for (i, r) in &refs {
        for (j, tenant) in tenants.iter().enumerate() {
            let got = tenant.get::<String>(r).await;
            if j == *i {
                assert!(got.unwrap().starts_with(&format!("{i}:")));
            } else {
                assert!(got.unwrap_err().is_not_found(), "{j} sees {i}'s {r}");
            }
        }
    }
    for (i, tenant) in tenants.iter().enumerate() {
        assert_eq!(
            tenant.list_of::<String>(0, 100).await.unwrap().len(),
            3,
            "t{i}"
        );
    }
}
